//! The template sizes the fleet from `KeyQps` through its `FleetByKeyQps` mapping; the numbers
//! are computed by `backdrop_lambda::sizing`. This keeps the two equal (and the parameter's
//! choices equal to the mapping's keys).

use backdrop_lambda::sizing::{FleetSize, KEY_QPS_CHOICES};

fn template() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/template.yaml");
    match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => panic!("cannot read {path}: {error}"),
    }
}

#[test]
fn the_mapping_is_the_one_sizing_computes() {
    let template = template();
    let expected = FleetSize::template_mapping();
    assert!(
        template.contains(&expected),
        "infra/template.yaml's FleetByKeyQps differs from backdrop_lambda::sizing; paste this \
         under Mappings:\n{expected}"
    );
}

#[test]
fn key_qps_offers_exactly_the_mapped_values() {
    let choices: Vec<String> = KEY_QPS_CHOICES.iter().map(u32::to_string).collect();
    let line = format!("    AllowedValues: [{}]", choices.join(", "));
    let template = template();
    let key_qps = template
        .split("\n  KeyQps:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n  ").next())
        .unwrap_or_default();
    assert!(
        template.contains(&format!(
            "  KeyQps:\n    Type: Number\n    Default: 2\n{line}\n"
        )),
        "KeyQps must offer {line:?}; found {key_qps:?}"
    );
}
