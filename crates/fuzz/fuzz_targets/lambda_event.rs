//! The Lambda's event parser: S3 notifications (direct, or in SQS message bodies, S3's
//! `s3:TestEvent` included) and EventBridge "Object Created" events.
//!
//! The input is read twice: as an invocation payload, and as the body of one SQS message (so the
//! fuzzer reaches the body parser without JSON-escaping). Checked, beyond "no panic":
//! - an SQS invocation has one item per record, in order, with the records' message ids;
//! - a direct invocation names at most one object per record (one for EventBridge);
//! - ETags never keep their quotes; a key with no `%` or `+` is taken as it is;
//! - parsing is deterministic.
#![no_main]

use backdrop_lambda::event::{self, Invocation, ObjectRef, SqsBody};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    if let Ok(payload) = serde_json::from_slice::<Value>(data) {
        check_payload(&payload);
    }
    let body = String::from_utf8_lossy(data);
    let payload = json!({"Records": [
        {"messageId": "m1", "eventSource": "aws:sqs", "body": body},
    ]});
    match event::parse(&payload) {
        Ok(Invocation::Sqs(items)) => {
            assert_eq!(items.len(), 1);
            assert_eq!(items[0].message_id, "m1");
            check_body(&items[0].body);
        }
        other => panic!("a one-message SQS event read as {other:?}"),
    }
});

fn check_payload(payload: &Value) {
    let parsed = event::parse(payload);
    let again = event::parse(payload);
    assert_eq!(format!("{parsed:?}"), format!("{again:?}"));
    let records = payload.get("Records").and_then(Value::as_array);
    match parsed {
        Ok(Invocation::Sqs(items)) => {
            let records = records.expect("SQS without Records");
            assert_eq!(items.len(), records.len());
            for (item, record) in items.iter().zip(records) {
                let id = record
                    .get("messageId")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                assert_eq!(item.message_id, id);
                check_body(&item.body);
            }
        }
        Ok(Invocation::Direct(objects)) => {
            if payload.get("detail-type").is_some() {
                assert!(objects.len() <= 1);
            } else {
                assert!(objects.len() <= records.map_or(0, Vec::len));
            }
            objects.iter().for_each(check_object);
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
}

fn check_body(body: &SqsBody) {
    match body {
        SqsBody::Objects(objects) => objects.iter().for_each(check_object),
        SqsBody::TestEvent => {}
        SqsBody::Unreadable(reason) => assert!(!reason.is_empty()),
    }
}

fn check_object(object: &ObjectRef) {
    if let Some(etag) = &object.etag {
        assert!(!etag.starts_with('"') && !etag.ends_with('"'), "{etag:?}");
    }
    for key in [&object.key, &object.bucket] {
        if !key.contains(['%', '+']) {
            assert_eq!(event::decode_key(key), *key);
        }
    }
}
