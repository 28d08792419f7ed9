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
        return key_from_secret(value)
            .map_err(|e| LambdaError::Secret(format!("secret {secret_id}: {e}")));
    }
    std::env::var(backdrop_core::ENV_API_KEY).map_err(|_| {
        LambdaError::Secret(format!(
            "neither {ENV_SECRET_ID} nor PICWISH_API_KEY is set"
        ))
    })
}

/// A secret's key: the `api_key` string field of a JSON object, or the whole string when it is
/// not JSON (a plain secret). A JSON secret without a usable `api_key` is refused, naming the
/// fields it has (never their values): sent whole, it would be a wrong key in every request
/// header and in every 401.
pub fn key_from_secret(value: &str) -> Result<String, String> {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(value) else {
        return Ok(value.trim().to_owned());
    };
    let fields = || match &json {
        serde_json::Value::Object(map) => {
            let names: Vec<&str> = map.keys().map(String::as_str).collect();
            format!("its fields are {names:?}")
        }
        _ => "it is not a JSON object".to_owned(),
    };
    match json.get("api_key").and_then(|k| k.as_str()).map(str::trim) {
        Some(key) if !key.is_empty() => Ok(key.to_owned()),
        _ => Err(format!(
            "the secret is JSON without a non-empty \"api_key\" string ({}); store it as \
             {{\"api_key\": \"YOUR_API_KEY\"}} or as the plain key",
            fields()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_json_secrets() {
        assert_eq!(key_from_secret(" abc \n").unwrap(), "abc");
        assert_eq!(key_from_secret(r#"{"api_key":"k1"}"#).unwrap(), "k1");
    }

    #[test]
    fn a_json_secret_without_its_key_is_refused_without_its_values() {
        for secret in [
            r#"{"apiKey":"sk-secret-value"}"#,
            r#"{"api_key":""}"#,
            r#"{"api_key":42}"#,
            r#"["sk-secret-value"]"#,
        ] {
            let error = key_from_secret(secret).unwrap_err();
            assert!(error.contains("api_key"), "{error}");
            assert!(!error.contains("sk-secret-value"), "{error}");
        }
    }
}
