//! The `backdrop` binary, run as a user runs it, against the emulator.

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use backdrop_tests::{Moto, TIME_SCALE, fast_config, fast_emulator, fixture, opaque_png};

fn backdrop(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_backdrop"));
    command
        .args(args)
        .env_remove("PICWISH_API_KEY")
        .env_remove("PICWISH_BASE_URL")
        .env_remove("PICWISH_QPS")
        .env_remove("RUST_LOG");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("the backdrop binary runs")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("backdrop-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn is_jpeg(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.starts_with(&[0xFF, 0xD8, 0xFF]))
}

#[cfg(feature = "emulator")]
#[test]
fn without_configuration_it_runs_on_the_built_in_emulator() {
    let out = temp_dir("embedded");
    let bottle = fixture("bottle.png");
    let output = backdrop(
        &[
            "generate",
            bottle.to_str().unwrap(),
            "--prompt",
            "a marble countertop",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {stderr}\nstdout: {}",
        text(&output.stdout)
    );
    assert!(stderr.contains("built-in emulator"), "{stderr}");
    assert!(is_jpeg(&out.join("bottle-1.jpg")) && is_jpeg(&out.join("bottle-2.jpg")));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("1 succeeded") && stdout.contains("6 credits"),
        "{stdout}"
    );
    std::fs::remove_dir_all(out).unwrap();
}

/// A build without the `emulator` feature says so, says how to set a key, and leaves nothing
/// behind (no output folder, no journal).
#[cfg(not(feature = "emulator"))]
#[test]
fn without_configuration_a_build_without_the_emulator_asks_for_a_key() {
    let out = temp_dir("no-emulator");
    std::fs::remove_dir_all(&out).unwrap();
    let bottle = fixture("bottle.png");
    let output = backdrop(
        &[
            "generate",
            bottle.to_str().unwrap(),
            "--prompt",
            "a marble countertop",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("built-in emulator was left out of this build"),
        "{stderr}"
    );
    assert!(stderr.contains("set PICWISH_API_KEY"), "{stderr}");
    assert!(!out.exists(), "nothing may be written: {}", out.display());
    let output = backdrop(&["emulator", "--help"], &[]);
    assert_eq!(output.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_folder_runs_concurrently_and_bad_files_are_refused_locally() {
    let emulator = fast_emulator(fast_config()).await;
    let inputs = temp_dir("folder-in");
    std::fs::create_dir_all(inputs.join("shelf")).unwrap();
    std::fs::copy(fixture("bottle.png"), inputs.join("bottle.png")).unwrap();
    std::fs::copy(fixture("mug.png"), inputs.join("shelf/mug one.png")).unwrap();
    std::fs::write(inputs.join("opaque.png"), opaque_png(300, 300)).unwrap();
    let out = temp_dir("folder-out");
    let qps = (2.0 * TIME_SCALE).to_string();
    let base = emulator.base_url();
    let (input_arg, out_arg) = (
        inputs.to_str().unwrap().to_owned(),
        out.to_str().unwrap().to_owned(),
    );
    let output = tokio::task::spawn_blocking(move || {
        backdrop(
            &[
                "generate",
                &input_arg,
                "--prompt",
                "forest",
                "--batch",
                "1",
                "--out",
                &out_arg,
                "--json",
                "--timeout",
                "60",
            ],
            &[
                ("PICWISH_API_KEY", "emulator-key"),
                ("PICWISH_BASE_URL", &base),
                ("PICWISH_QPS", &qps),
            ],
        )
    })
    .await
    .unwrap();
    // The only failure was refused locally: exit code 3.
    assert_eq!(
        output.status.code(),
        Some(3),
        "stderr: {}",
        text(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["succeeded"], 2);
    assert_eq!(summary["failed"], 1);
    assert_eq!(summary["credits"], 6);
    let failed = summary["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["status"] == "failed")
        .unwrap();
    assert!(failed["input"].as_str().unwrap().ends_with("opaque.png"));
    assert_eq!(failed["error"]["refused_locally"], true);
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no transparency")
    );
    assert!(is_jpeg(&out.join("bottle-1.jpg")));
    assert!(is_jpeg(&out.join("shelf/mug one-1.jpg")));
    assert_eq!(emulator.counters().tasks_created, 2);
    std::fs::remove_dir_all(inputs).unwrap();
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn validate_names_the_rule_and_sends_nothing() {
    let dir = temp_dir("validate");
    let opaque = dir.join("opaque.png");
    std::fs::write(&opaque, opaque_png(300, 300)).unwrap();
    let bottle = fixture("bottle.png");
    let output = backdrop(
        &[
            "validate",
            bottle.to_str().unwrap(),
            opaque.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(3));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("ok   ") && stdout.contains("480x640"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL") && stdout.contains("no transparency"),
        "{stdout}"
    );
    let output = backdrop(&["validate", bottle.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(0));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_options_fail_before_anything_starts() {
    let bottle = fixture("bottle.png");
    let long = "x".repeat(1025);
    let output = backdrop(
        &["generate", bottle.to_str().unwrap(), "--prompt", &long],
        &[],
    );
    assert_eq!(output.status.code(), Some(3));
    assert!(
        text(&output.stderr).contains("1025 characters"),
        "{}",
        text(&output.stderr)
    );
    assert!(
        !text(&output.stderr).contains("emulator"),
        "nothing may start for a bad prompt"
    );

    let output = backdrop(
        &[
            "generate",
            bottle.to_str().unwrap(),
            "--prompt",
            "x",
            "--scene",
            "3",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    let output = backdrop(
        &[
            "generate",
            bottle.to_str().unwrap(),
            "--prompt",
            "x",
            "--batch",
            "3",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(3));
    assert!(text(&output.stderr).contains("must be 1 or 2"));
    let output = backdrop(&["generate", "/no/such.png", "--prompt", "x"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("/no/such.png"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_key_exits_4_and_status_reads_a_task() {
    let emulator = fast_emulator(fast_config()).await;
    let base = emulator.base_url();
    let bottle = fixture("bottle.png").display().to_string();
    let out = temp_dir("wrong-key");
    let (b, o, url) = (bottle.clone(), out.display().to_string(), base.clone());
    let output = tokio::task::spawn_blocking(move || {
        backdrop(
            &["generate", &b, "--prompt", "x", "--out", &o],
            &[
                ("PICWISH_API_KEY", "not-the-key"),
                ("PICWISH_BASE_URL", &url),
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(4), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("HTTP 401"));
    assert!(
        !text(&output.stdout).contains("not-the-key")
            && !text(&output.stderr).contains("not-the-key")
    );

    let client = backdrop_tests::client_for(&emulator, 2);
    let request = backdrop_core::GenerateRequest::builder()
        .image_path(fixture("mug.png"))
        .scene_type(backdrop_core::SceneType::try_from(7).unwrap())
        .batch_size(backdrop_core::BatchSize::One)
        .build()
        .unwrap();
    let task_id = client.create_task(&request).await.unwrap();
    client
        .wait_for_task_with(&task_id, backdrop_core::WaitOptions::default(), |_| {
            backdrop_core::WaitControl::Continue
        })
        .await
        .unwrap();
    let (id, o) = (task_id.clone(), out.display().to_string());
    let output = tokio::task::spawn_blocking(move || {
        backdrop(
            &["status", &id, "--out", &o],
            &[
                ("PICWISH_API_KEY", "emulator-key"),
                ("PICWISH_BASE_URL", &base),
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("completed") && stdout.contains("credits   3"),
        "{stdout}"
    );
    assert!(is_jpeg(&out.join(format!("{task_id}-1.jpg"))));
    std::fs::remove_dir_all(out).unwrap();
}

/// Every PNG fixture of core through `validate` and `generate`: the verdict core gives, the
/// transparent share shown for the valid ones, and not one request for the refused ones; with
/// `--allow-opaque` the pixel rules give way, nothing else does.
#[tokio::test(flavor = "multi_thread")]
async fn every_png_fixture_gets_its_verdict_in_validate_and_generate() {
    let fixtures = backdrop_core::validate::fixtures::all();
    let folder = temp_dir("fixtures-in");
    for fixture in &fixtures {
        std::fs::write(folder.join(format!("{}.png", fixture.name)), &fixture.bytes).unwrap();
    }
    let folder_arg = folder.to_str().unwrap().to_owned();

    // validate: one line per file, the share for the valid ones; JSON with the counts.
    let output = backdrop(&["validate", &folder_arg], &[]);
    assert_eq!(output.status.code(), Some(3));
    let stdout = text(&output.stdout);
    for fixture in &fixtures {
        let line = stdout
            .lines()
            .find(|l| l.contains(&format!("{}.png:", fixture.name)))
            .unwrap_or_else(|| panic!("no line for {}: {stdout}", fixture.name));
        match fixture.refused_by {
            None => assert!(
                line.starts_with("ok") && line.contains("% of the pixels transparent"),
                "{line}"
            ),
            Some(_) => assert!(line.starts_with("FAIL"), "{line}"),
        }
    }
    let output = backdrop(&["validate", &folder_arg, "--json"], &[]);
    let verdicts: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let valid_rgba = verdicts
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["file"].as_str().unwrap().ends_with("valid-rgba.png"))
        .unwrap();
    assert_eq!(valid_rgba["pixels"]["total"], 90_000);
    let share = valid_rgba["transparent_share"].as_f64().unwrap();
    assert!(share > 0.5 && share < 0.8, "{share}");
    // The header alone passes every damaged file and every pixel refusal.
    let output = backdrop(&["validate", &folder_arg, "--header-only"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
    // The override: only the damaged files are refused.
    let output = backdrop(&["validate", &folder_arg, "--allow-opaque", "--json"], &[]);
    let verdicts: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for verdict in verdicts.as_array().unwrap() {
        let name = verdict["file"].as_str().unwrap();
        let fixture = fixtures
            .iter()
            .find(|f| name.ends_with(&format!("/{}.png", f.name)))
            .unwrap();
        let expected = fixture.refused_by.is_none_or(|rule| rule.is_pixel_rule());
        assert_eq!(verdict["valid"], expected, "{verdict}");
    }

    // generate: the valid ones are sent, the refused ones cost nothing.
    let emulator = fast_emulator(fast_config()).await;
    let out = temp_dir("fixtures-out");
    let scale = TIME_SCALE.to_string();
    let (base, out_arg) = (emulator.base_url(), out.to_str().unwrap().to_owned());
    let output = tokio::task::spawn_blocking(move || {
        backdrop(
            &[
                "generate",
                &folder_arg,
                "-p",
                "a beach",
                "--batch",
                "1",
                "--json",
                "--out",
                &out_arg,
                "--timeout",
                "60",
                "--time-scale",
                &scale,
            ],
            &[
                ("PICWISH_API_KEY", "emulator-key"),
                ("PICWISH_BASE_URL", &base),
            ],
        )
    })
    .await
    .unwrap();
    // Every failure was a local refusal: exit code 3, nothing spent on them.
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let valid = fixtures.iter().filter(|f| f.refused_by.is_none()).count();
    assert_eq!(summary["succeeded"], valid, "{summary:#}");
    assert_eq!(emulator.counters().create_requests, valid as u64);
    for input in summary["inputs"].as_array().unwrap() {
        if input["status"] == "failed" {
            assert_eq!(input["error"]["refused_locally"], true, "{input}");
        }
    }
    std::fs::remove_dir_all(&folder).ok();
    std::fs::remove_dir_all(&out).ok();
}

/// Two runs at once, each configured with the key's whole QPS: through one shared budget
/// (`--shared-budget dynamodb:TABLE`, DynamoDB on moto) they stay within the key together — not
/// one 429 from a server that allows exactly that QPS.
#[tokio::test(flavor = "multi_thread")]
async fn two_runs_sharing_a_budget_stay_within_the_key() {
    let moto = Moto::start();
    let aws = [
        ("AWS_ENDPOINT_URL_DYNAMODB", moto.endpoint()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ];
    let created = Command::new("python3")
        .args([
            "-c",
            "import boto3,sys; boto3.client('dynamodb', endpoint_url=sys.argv[1], region_name='us-east-1', \
             aws_access_key_id='testing', aws_secret_access_key='testing').create_table(TableName='budget', \
             BillingMode='PAY_PER_REQUEST', AttributeDefinitions=[{'AttributeName':'pk','AttributeType':'S'}], \
             KeySchema=[{'AttributeName':'pk','KeyType':'HASH'}])",
            moto.endpoint(),
        ])
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .status();
    if !created.is_ok_and(|s| s.success()) {
        panic!("cannot create the DynamoDB table (is the venv's python3 on PATH?)");
    }
    let emulator = fast_emulator(backdrop_emulator::EmulatorConfig {
        qps: 2,
        ..fast_config()
    })
    .await;
    let scale = TIME_SCALE.to_string();
    let base = emulator.base_url();
    let mut runs = Vec::new();
    for n in 0..2 {
        let inputs = temp_dir(&format!("shared-in-{n}"));
        for i in 0..8 {
            std::fs::copy(fixture("bottle.png"), inputs.join(format!("p{i}.png"))).unwrap();
        }
        let out = temp_dir(&format!("shared-out-{n}"));
        let mut env: Vec<(String, String)> = aws
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        env.push(("PICWISH_API_KEY".into(), "emulator-key".into()));
        env.push(("PICWISH_BASE_URL".into(), base.clone()));
        let args: Vec<String> = [
            "generate",
            inputs.to_str().unwrap(),
            "-p",
            "a beach",
            "--batch",
            "1",
            "--json",
            "--out",
            out.to_str().unwrap(),
            "--qps",
            "2",
            "--time-scale",
            &scale,
            "--shared-budget",
            "dynamodb:budget",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        runs.push(tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            backdrop(&args, &env)
        }));
    }
    for run in runs {
        let output = run.await.unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    }
    let counters = emulator.counters();
    assert_eq!(counters.tasks_created, 16);
    assert_eq!(counters.responses_by_status.get(&429), None, "{counters:?}");
    assert!(counters.max_requests_in_window <= 2, "{counters:?}");
}

#[test]
fn a_time_scale_out_of_range_is_refused_before_anything_runs() {
    let dir = temp_dir("time-scale-range");
    let out = dir.join("out");
    for value in ["1e-300", "0", "-2", "NaN", "inf", "1e7"] {
        let flag = format!("--time-scale={value}");
        let output = backdrop(
            &[
                "generate",
                "product.png",
                "--prompt",
                "a marble countertop",
                "--out",
                out.to_str().unwrap(),
                &flag,
            ],
            &[],
        );
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{value}: {stderr}");
        assert!(stderr.contains("--time-scale"), "{value}: {stderr}");
        assert!(
            stderr.contains("0.001"),
            "{value} names the range: {stderr}"
        );
        assert!(!out.exists(), "{value}: nothing may be written");
    }
}

#[test]
fn completions_and_manual_pages_come_from_the_binary() {
    for (shell, marker) in [
        ("bash", "_backdrop()"),
        ("zsh", "#compdef backdrop"),
        ("fish", "complete -c backdrop"),
    ] {
        let output = backdrop(&["completions", shell], &[]);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        let script = text(&output.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        // The subcommands and their flags are completed.
        assert!(
            script.contains("generate") && script.contains("max-credits"),
            "{shell}"
        );
    }
    let output = backdrop(&["completions", "tcsh"], &[]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );

    let output = backdrop(&["man"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let page = text(&output.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH backdrop 1"),
        "{page}"
    );
    assert!(page.contains("generate"), "{page}");

    let dir = temp_dir("man");
    let output = backdrop(&["man", "--dir", dir.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    for page in ["backdrop.1", "backdrop-generate.1", "backdrop-validate.1"] {
        let roff = std::fs::read_to_string(dir.join(page)).unwrap_or_default();
        assert!(roff.contains(".TH"), "{page}: {roff}");
    }
    let generate = std::fs::read_to_string(dir.join("backdrop-generate.1")).unwrap();
    assert!(generate.contains("max\\-credits"), "{generate}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn logs_on_a_pipe_carry_no_colour() {
    // stderr is a pipe here, as in a log file or CI: no ANSI escape whatever the log level.
    let output = backdrop(
        &["-vv", "validate", fixture("bottle.png").to_str().unwrap()],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let dir = temp_dir("plain-logs");
    let output = backdrop(
        &[
            "-vv",
            "generate",
            fixture("bottle.png").to_str().unwrap(),
            "--prompt",
            "a plain log",
            "--out",
            dir.to_str().unwrap(),
            "--no-report",
        ],
        &[],
    );
    let stderr = text(&output.stderr);
    assert!(!stderr.is_empty(), "-vv logs something");
    assert!(!stderr.contains('\u{1b}'), "ANSI escape in: {stderr}");
    std::fs::remove_dir_all(&dir).ok();
}
