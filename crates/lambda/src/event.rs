//! The events the function accepts, read tolerantly: S3 notifications (direct, or in SQS
//! message bodies, S3's `s3:TestEvent` included) and EventBridge "Object Created" events.
//!
//! SQS and EventBridge envelopes are `aws_lambda_events` types. S3 records are read with the few
//! fields the function needs, because real senders omit fields `aws_lambda_events::s3::S3Event`
//! requires (S3-compatible servers leave out `userIdentity` and `requestParameters`).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::Value;

use crate::error::LambdaError;

/// One S3 object version an event names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// The bucket.
    pub bucket: String,
    /// The key, decoded.
    pub key: String,
    /// The ETag the event reports (without quotes), if any.
    pub etag: Option<String>,
}

/// What an invocation carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// SQS messages; each is retried on its own through the batch response.
    Sqs(Vec<SqsItem>),
    /// S3 notification records or an EventBridge event delivered directly.
    Direct(Vec<ObjectRef>),
}

/// One SQS message and the objects its body names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsItem {
    /// The message id (reported back when the message must be retried).
    pub message_id: String,
    /// The receipt handle of this delivery (to delay the next one), if the event has it.
    pub receipt_handle: Option<String>,
    /// How many times SQS has delivered the message, this delivery included
    /// (`attributes.ApproximateReceiveCount`); 1 when the event does not say.
    pub receive_count: u32,
    /// The queue's ARN (`eventSourceARN`), if the event has it.
    pub queue_arn: Option<String>,
    /// The objects, or why the body names none.
    pub body: SqsBody,
}

/// What an SQS message body holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqsBody {
    /// S3 notification records.
    Objects(Vec<ObjectRef>),
    /// S3's `s3:TestEvent`, sent when notifications are configured: acknowledged, ignored.
    TestEvent,
    /// A body that is not an S3 notification: acknowledged (retrying cannot fix it), logged.
    Unreadable(String),
}

#[derive(Debug, Deserialize)]
struct S3Notification {
    #[serde(rename = "Records", default)]
    records: Vec<S3Record>,
    #[serde(rename = "Event")]
    event: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Record {
    #[serde(default)]
    event_name: Option<String>,
    s3: S3Entity,
}

#[derive(Debug, Deserialize)]
struct S3Entity {
    bucket: S3Bucket,
    object: S3Object,
}

#[derive(Debug, Deserialize)]
struct S3Bucket {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Object {
    key: String,
    #[serde(default, alias = "etag")]
    e_tag: Option<String>,
}

#[derive(Debug, Deserialize)]
struct BridgeDetail {
    bucket: S3Bucket,
    object: BridgeObject,
}

#[derive(Debug, Deserialize)]
struct BridgeObject {
    key: String,
    #[serde(default)]
    etag: Option<String>,
}

/// Reads an invocation's payload.
pub fn parse(payload: &Value) -> Result<Invocation, LambdaError> {
    if payload.get("detail-type").is_some() {
        let event: EventBridgeEvent<Value> = serde_json::from_value(payload.clone())
            .map_err(|e| LambdaError::Event(format!("EventBridge event: {e}")))?;
        if event.detail_type != "Object Created" {
            return Ok(Invocation::Direct(Vec::new()));
        }
        let detail: BridgeDetail = serde_json::from_value(event.detail)
            .map_err(|e| LambdaError::Event(format!("EventBridge Object Created detail: {e}")))?;
        // EventBridge carries keys as they are, not URL-encoded.
        return Ok(Invocation::Direct(vec![ObjectRef {
            bucket: detail.bucket.name,
            key: detail.object.key,
            etag: detail.object.etag.map(|e| unquote(&e)),
        }]));
    }
    let is_sqs = payload
        .get("Records")
        .and_then(Value::as_array)
        .and_then(|records| records.first())
        .and_then(|record| record.get("eventSource"))
        .and_then(Value::as_str)
        == Some("aws:sqs");
    if is_sqs {
        let event: SqsEvent = serde_json::from_value(payload.clone())
            .map_err(|e| LambdaError::Event(format!("SQS event: {e}")))?;
        let items = event
            .records
            .into_iter()
            .map(|message| SqsItem {
                receive_count: message
                    .attributes
                    .get("ApproximateReceiveCount")
                    .and_then(|count| count.trim().parse().ok())
                    .unwrap_or(1),
                receipt_handle: message.receipt_handle.filter(|h| !h.is_empty()),
                queue_arn: message.event_source_arn.filter(|a| !a.is_empty()),
                message_id: message.message_id.unwrap_or_default(),
                body: sqs_body(message.body.as_deref().unwrap_or("")),
            })
            .collect();
        return Ok(Invocation::Sqs(items));
    }
    let notification: S3Notification = serde_json::from_value(payload.clone())
        .map_err(|e| LambdaError::Event(format!("S3 notification: {e}")))?;
    Ok(Invocation::Direct(objects(notification)))
}

fn sqs_body(body: &str) -> SqsBody {
    match serde_json::from_str::<S3Notification>(body) {
        Ok(notification) if notification.event.as_deref() == Some("s3:TestEvent") => {
            SqsBody::TestEvent
        }
        Ok(notification) => SqsBody::Objects(objects(notification)),
        Err(e) => SqsBody::Unreadable(format!("not an S3 notification: {e}")),
    }
}

fn objects(notification: S3Notification) -> Vec<ObjectRef> {
    notification
        .records
        .into_iter()
        .filter(|r| {
            r.event_name
                .as_deref()
                .is_none_or(|name| name.starts_with("ObjectCreated"))
        })
        .map(|r| ObjectRef {
            bucket: r.s3.bucket.name,
            key: decode_key(&r.s3.object.key),
            etag: r.s3.object.e_tag.map(|e| unquote(&e)),
        })
        .collect()
}

/// Decodes an S3 notification key: `+` is a space, `%xx` an escaped byte.
pub fn decode_key(key: &str) -> String {
    let spaced = key.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// An ETag without its surrounding quotes.
pub fn unquote(etag: &str) -> String {
    etag.trim().trim_matches('"').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_decoded() {
        assert_eq!(
            decode_key("incoming/red+flower%2B1.png"),
            "incoming/red flower+1.png"
        );
        assert_eq!(
            decode_key("incoming%2Fcaf%C3%A9%2Fmug.png"),
            "incoming/café/mug.png"
        );
    }

    #[test]
    fn a_minimal_s3_record_without_user_identity_is_read() {
        let payload = serde_json::json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "shop"},
            "object": {"key": "incoming/a+b.png", "eTag": "\"abc\"", "size": 10}}}]});
        assert_eq!(
            parse(&payload).unwrap(),
            Invocation::Direct(vec![ObjectRef {
                bucket: "shop".into(),
                key: "incoming/a b.png".into(),
                etag: Some("abc".into())
            }])
        );
    }

    #[test]
    fn sqs_wrapped_test_events_and_garbage() {
        let payload = serde_json::json!({"Records": [
            {"messageId": "m1", "eventSource": "aws:sqs", "body": "{\"Service\":\"Amazon S3\",\"Event\":\"s3:TestEvent\",\"Bucket\":\"shop\"}"},
            {"messageId": "m2", "eventSource": "aws:sqs", "body": "not json"},
        ]});
        let Invocation::Sqs(items) = parse(&payload).unwrap() else {
            panic!("not sqs")
        };
        assert_eq!(items[0].body, SqsBody::TestEvent);
        assert!(matches!(items[1].body, SqsBody::Unreadable(_)));
    }

    #[test]
    fn eventbridge_keys_are_taken_as_they_are() {
        let payload = serde_json::json!({"version": "0", "id": "1", "detail-type": "Object Created",
            "source": "aws.s3", "account": "1", "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
            "resources": [], "detail": {"version": "0", "bucket": {"name": "shop"},
            "object": {"key": "incoming/100% cotton+.png", "size": 5, "etag": "e1"}}});
        let Invocation::Direct(objects) = parse(&payload).unwrap() else {
            panic!()
        };
        assert_eq!(objects[0].key, "incoming/100% cotton+.png");
    }

    #[test]
    fn the_committed_fixtures_parse() {
        let read = |bytes: &[u8]| parse(&serde_json::from_slice(bytes).unwrap()).unwrap();
        let Invocation::Direct(direct) = read(include_bytes!("../tests/events/s3-direct.json"))
        else {
            panic!()
        };
        assert_eq!(direct[0].key, "incoming/fixtures/direct bottle.png");
        let Invocation::Direct(bridge) = read(include_bytes!("../tests/events/eventbridge.json"))
        else {
            panic!()
        };
        assert_eq!(bridge[0].key, "incoming/fixtures/bridge bottle.png");
        let Invocation::Sqs(sqs) = read(include_bytes!("../tests/events/sqs-s3.json")) else {
            panic!()
        };
        let SqsBody::Objects(objects) = &sqs[0].body else {
            panic!()
        };
        assert_eq!(objects[0].key, "incoming/fixtures/sqs bottle été.png");
        let Invocation::Sqs(test) = read(include_bytes!("../tests/events/sqs-test-event.json"))
        else {
            panic!()
        };
        assert_eq!(test[0].body, SqsBody::TestEvent);
    }
}
