//! The API key: from AWS Secrets Manager in a deployment, or `PICWISH_API_KEY` locally.

use crate::error::LambdaError;

/// Environment variable naming the secret (id or ARN) that holds the key.
pub const ENV_SECRET_ID: &str = "PICWISH_API_KEY_SECRET_ID";

/// Reads the key: the secret named by `PICWISH_API_KEY_SECRET_ID` (its plain string, or the
/// `api_key` field of a JSON secret), else `PICWISH_API_KEY`.
pub async fn api_key(aws: &aws_config::SdkConfig) -> Result<String, LambdaError> {
    if let Some(secret_id) = std::env::var(ENV_SECRET_ID)
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        let client = aws_sdk_secretsmanager::Client::new(aws);
        let secret = client
            .get_secret_value()
            .secret_id(&secret_id)
            .send()
            .await
            .map_err(|e| {
                LambdaError::Secret(format!(
                    "GetSecretValue {secret_id}: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                ))
            })?;
        let value = secret.secret_string().ok_or_else(|| {
            LambdaError::Secret(format!("secret {secret_id} has no string value"))
        })?;
        return Ok(key_from_secret(value));
    }
    std::env::var(backdrop_core::config::ENV_API_KEY).map_err(|_| {
        LambdaError::Secret(format!(
            "neither {ENV_SECRET_ID} nor PICWISH_API_KEY is set"
        ))
    })
}

/// A secret's key: the `api_key` field of a JSON object, or the whole string.
pub fn key_from_secret(value: &str) -> String {
    serde_json::from_str::<serde_json::Value>(value)
        .ok()
        .and_then(|json| {
            json.get("api_key")
                .and_then(|k| k.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| value.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_json_secrets() {
        assert_eq!(key_from_secret(" abc \n"), "abc");
        assert_eq!(key_from_secret(r#"{"api_key":"k1"}"#), "k1");
    }
}
