//! Writes core's PNG fixtures (`backdrop_core::validate::fixtures`) to a folder, for the suites
//! in other languages: `<name>.png` for each, and `verdicts.txt` with one line per fixture,
//! `<name>.png <rule>`, the rule being `ok` or the one it breaks (`damaged_png`,
//! `trailing_data`, `damaged_image_data`, `nothing_transparent`, `nothing_visible`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use backdrop_core::validate::fixtures::{self, Rule};

fn main() -> ExitCode {
    let Some(folder) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: write-png-fixtures FOLDER");
        return ExitCode::from(2);
    };
    match write(&folder) {
        Ok(count) => {
            println!("{count} fixtures in {}", folder.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("write-png-fixtures: {}: {error}", folder.display());
            ExitCode::FAILURE
        }
    }
}

fn write(folder: &std::path::Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(folder)?;
    let mut verdicts = std::fs::File::create(folder.join("verdicts.txt"))?;
    let all = fixtures::all();
    for fixture in &all {
        std::fs::write(folder.join(format!("{}.png", fixture.name)), &fixture.bytes)?;
        let rule = match fixture.refused_by {
            None => "ok",
            Some(Rule::DamagedPng) => "damaged_png",
            Some(Rule::TrailingData) => "trailing_data",
            Some(Rule::DamagedImageData) => "damaged_image_data",
            Some(Rule::NothingTransparent) => "nothing_transparent",
            Some(Rule::NothingVisible) => "nothing_visible",
        };
        writeln!(verdicts, "{}.png {rule}", fixture.name)?;
    }
    Ok(all.len())
}
