//! The generation parameters of an object: its user metadata, else the function's defaults.

use std::collections::HashMap;

use backdrop_core::{Background, BatchSize, GenerationOptions, SceneType};

use crate::config::Defaults;

/// `x-amz-meta-prompt`.
pub const META_PROMPT: &str = "prompt";
/// `x-amz-meta-negative-prompt`.
pub const META_NEGATIVE_PROMPT: &str = "negative-prompt";
/// `x-amz-meta-scene-type`.
pub const META_SCENE_TYPE: &str = "scene-type";
/// `x-amz-meta-batch-size`.
pub const META_BATCH_SIZE: &str = "batch-size";
/// `x-amz-meta-retry-unconfirmed: true`: create again although an earlier create for the same
/// object and parameters may have been accepted and charged.
pub const META_RETRY_UNCONFIRMED: &str = "retry-unconfirmed";
/// `x-amz-meta-regenerate-expired: true`: generate again although an earlier task for the same
/// object and parameters was charged and its results were lost.
pub const META_REGENERATE_EXPIRED: &str = "regenerate-expired";
/// `x-amz-meta-allow-opaque: true`: send the image even when no pixel is transparent (the
/// background was not removed) or none is visible.
pub const META_ALLOW_OPAQUE: &str = "allow-opaque";

/// What to generate for one object, and what its uploader allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameters {
    /// The options: part of the object's identity (new options are new work).
    pub options: GenerationOptions,
    /// `x-amz-meta-retry-unconfirmed`.
    pub retry_unconfirmed: bool,
    /// `x-amz-meta-regenerate-expired`.
    pub regenerate_expired: bool,
    /// `x-amz-meta-allow-opaque`.
    pub allow_opaque: bool,
}

impl Parameters {
    /// The pixel rules the object's image is checked by.
    pub fn pixel_rules(&self) -> backdrop_core::validate::PixelRules {
        backdrop_core::validate::PixelRules {
            allow_opaque: self.allow_opaque,
            ..backdrop_core::validate::PixelRules::default()
        }
    }

    /// Reads the parameters: metadata first, then `defaults`. Both a prompt and a scene type in
    /// the metadata, neither anywhere, or a value the service refuses, is an error that says which.
    pub fn resolve(
        metadata: &HashMap<String, String>,
        defaults: &Defaults,
    ) -> Result<Parameters, String> {
        // S3 returns non-ASCII values RFC 2047-encoded: the service must get the text itself.
        let mut decoded = HashMap::new();
        for name in [
            META_PROMPT,
            META_NEGATIVE_PROMPT,
            META_SCENE_TYPE,
            META_BATCH_SIZE,
            META_RETRY_UNCONFIRMED,
            META_REGENERATE_EXPIRED,
            META_ALLOW_OPAQUE,
        ] {
            if let Some(value) = metadata.get(name) {
                let text = crate::metadata::decode(value).map_err(|why| {
                    format!(
                        "x-amz-meta-{name} is RFC 2047-encoded (as S3 returns non-ASCII \
                         metadata) but {why}; upload the object again with the value in UTF-8"
                    )
                })?;
                decoded.insert(name, text);
            }
        }
        let meta = |name: &str| {
            decoded
                .get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let background = match (meta(META_PROMPT), meta(META_SCENE_TYPE)) {
            (Some(_), Some(_)) => {
                return Err("the object's metadata has both x-amz-meta-prompt and x-amz-meta-scene-type; keep one".into());
            }
            (Some(prompt), None) => options(Background::Prompt(prompt), "x-amz-meta-prompt")?,
            (None, Some(scene)) => {
                let value: i64 = scene.parse().map_err(|_| {
                    format!("x-amz-meta-scene-type {scene:?} is not a whole number")
                })?;
                let scene = SceneType::try_from(value)
                    .map_err(|e| format!("x-amz-meta-scene-type: {e}"))?;
                options(Background::SceneType(scene), "x-amz-meta-scene-type")?
            }
            (None, None) => match (&defaults.prompt, defaults.scene_type) {
                (Some(prompt), _) => options(Background::Prompt(prompt.clone()), "DEFAULT_PROMPT")?,
                (None, Some(scene)) => {
                    let scene = SceneType::try_from(scene)
                        .map_err(|e| format!("DEFAULT_SCENE_TYPE: {e}"))?;
                    options(Background::SceneType(scene), "DEFAULT_SCENE_TYPE")?
                }
                (None, None) => {
                    return Err("no background description: set x-amz-meta-prompt (or x-amz-meta-scene-type) on the \
                                object, or DEFAULT_PROMPT / DEFAULT_SCENE_TYPE on the function"
                        .into());
                }
            },
        };
        let batch_size = match meta(META_BATCH_SIZE) {
            Some(value) => {
                let number: i64 = value
                    .parse()
                    .map_err(|_| format!("x-amz-meta-batch-size {value:?} is not 1 or 2"))?;
                BatchSize::try_from(number).map_err(|e| format!("x-amz-meta-batch-size: {e}"))?
            }
            None => defaults.batch_size,
        };
        let mut options = background.with_batch_size(batch_size);
        if let Some(negative) =
            meta(META_NEGATIVE_PROMPT).or_else(|| defaults.negative_prompt.clone())
        {
            options = options.with_negative_prompt(negative);
        }
        Ok(Parameters {
            options,
            retry_unconfirmed: flag(&meta(META_RETRY_UNCONFIRMED), META_RETRY_UNCONFIRMED)?,
            regenerate_expired: flag(&meta(META_REGENERATE_EXPIRED), META_REGENERATE_EXPIRED)?,
            allow_opaque: flag(&meta(META_ALLOW_OPAQUE), META_ALLOW_OPAQUE)?,
        })
    }
}

fn options(background: Background, source: &str) -> Result<GenerationOptions, String> {
    GenerationOptions::new(background).map_err(|e| format!("{source}: {e}"))
}

/// A yes/no metadata value: `true`/`yes`/`1` or `false`/`no`/`0`, any case.
fn flag(value: &Option<String>, name: &str) -> Result<bool, String> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "no" | "0") => Ok(false),
        Some("true" | "yes" | "1") => Ok(true),
        Some(other) => Err(format!("x-amz-meta-{name} {other:?} is not true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn encoded_metadata_is_decoded_and_undecodable_metadata_refused() {
        let p = Parameters::resolve(
            &meta(&[("prompt", "=?UTF-8?B?5aSn55CG55+z5Y+w6Z2i?=")]),
            &Defaults::default(),
        )
        .unwrap();
        assert_eq!(
            p.options.background(),
            &Background::Prompt("大理石台面".into())
        );
        let error = Parameters::resolve(
            &meta(&[("prompt", "=?GB2312?B?tPPA7cqv?=")]),
            &Defaults::default(),
        )
        .unwrap_err();
        assert!(
            error.contains("x-amz-meta-prompt") && error.contains("GB2312"),
            "{error}"
        );
    }

    #[test]
    fn metadata_wins_over_defaults() {
        let defaults = Defaults {
            scene_type: Some(3),
            negative_prompt: Some("text".into()),
            ..Defaults::default()
        };
        let p = Parameters::resolve(
            &meta(&[("prompt", "a beach"), ("batch-size", "1")]),
            &defaults,
        )
        .unwrap();
        assert_eq!(
            p.options.background(),
            &Background::Prompt("a beach".into())
        );
        assert_eq!(p.options.batch_size(), BatchSize::One);
        assert_eq!(p.options.negative_prompt(), Some("text"));
        let p = Parameters::resolve(&meta(&[]), &defaults).unwrap();
        assert_eq!(
            p.options.background(),
            &Background::SceneType(SceneType::try_from(3).unwrap())
        );
        assert_eq!(p.options.batch_size(), BatchSize::Two);
        assert!(!p.retry_unconfirmed && !p.regenerate_expired);
    }

    #[test]
    fn missing_or_contradictory_parameters_say_what_to_do() {
        let none = Parameters::resolve(&meta(&[]), &Defaults::default()).unwrap_err();
        assert!(none.contains("x-amz-meta-prompt"), "{none}");
        let both = Parameters::resolve(
            &meta(&[("prompt", "x"), ("scene-type", "2")]),
            &Defaults::default(),
        )
        .unwrap_err();
        assert!(both.contains("both"), "{both}");
        assert!(
            Parameters::resolve(
                &meta(&[("prompt", "x"), ("batch-size", "5")]),
                &Defaults::default()
            )
            .is_err()
        );
        assert!(Parameters::resolve(&meta(&[("scene-type", "-1")]), &Defaults::default()).is_err());
        let long = "é".repeat(1025);
        let error =
            Parameters::resolve(&meta(&[("prompt", &long)]), &Defaults::default()).unwrap_err();
        assert!(error.starts_with("x-amz-meta-prompt:"), "{error}");
    }

    #[test]
    fn the_uploader_may_accept_paying_again() {
        let p = Parameters::resolve(
            &meta(&[
                ("prompt", "x"),
                ("retry-unconfirmed", "TRUE"),
                ("regenerate-expired", "yes"),
            ]),
            &Defaults::default(),
        )
        .unwrap();
        assert!(p.retry_unconfirmed && p.regenerate_expired);
        let error = Parameters::resolve(
            &meta(&[("prompt", "x"), ("retry-unconfirmed", "maybe")]),
            &Defaults::default(),
        )
        .unwrap_err();
        assert!(error.contains("x-amz-meta-retry-unconfirmed"), "{error}");
    }
}
