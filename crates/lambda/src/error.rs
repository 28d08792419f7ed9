//! The function's one error type.

/// What can stop the function or one object's processing.
#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    /// The environment configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The API key could not be read.
    #[error(
        "cannot read the API key: {0}; set PICWISH_API_KEY_SECRET_ID to a Secrets Manager secret holding the key (or PICWISH_API_KEY for local runs)"
    )]
    Secret(String),
    /// An S3 call failed.
    #[error("S3 {operation} s3://{bucket}/{key} failed: {message}")]
    S3 {
        /// The operation ("HeadObject", "PutObject", …).
        operation: &'static str,
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The HTTP status S3 answered, if it answered.
        status: Option<u16>,
        /// S3's error code (`AccessDenied`, `KMS.DisabledException`, …), if any.
        code: Option<String>,
        /// The cause.
        message: String,
    },
    /// An SQS call failed.
    #[error("SQS {operation} on {queue} failed: {message}")]
    Sqs {
        /// The operation ("ChangeMessageVisibility", …).
        operation: &'static str,
        /// The queue (ARN or URL).
        queue: String,
        /// The cause.
        message: String,
    },
    /// Some objects of a direct (non-SQS) event hit transient trouble: Lambda retries the event.
    #[error("{0}")]
    Retry(String),
    /// The event is not one of the accepted shapes.
    #[error("unrecognised event: {0}")]
    Event(String),
}

impl LambdaError {
    /// True when S3 refused the function's role (HTTP 403, `AccessDenied`, a KMS key it may not
    /// use): delivering the event again cannot help until the role or the key policy changes.
    pub fn access_denied(&self) -> bool {
        match self {
            LambdaError::S3 { status, code, .. } => {
                *status == Some(403)
                    || code.as_deref().is_some_and(|code| {
                        code == "AccessDenied"
                            || code == "AllAccessDisabled"
                            || code.starts_with("KMS.")
                            || code == "InvalidObjectState"
                    })
            }
            _ => false,
        }
    }
}
