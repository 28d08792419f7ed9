//! The generation parameters of an object: its user metadata, else the function's defaults.

use std::collections::HashMap;

use backdrop_core::{Background, BatchSize, GenerateRequest, GenerateRequestBuilder, request};
use serde::Serialize;

use crate::config::Defaults;

/// `x-amz-meta-prompt`.
pub const META_PROMPT: &str = "prompt";
/// `x-amz-meta-negative-prompt`.
pub const META_NEGATIVE_PROMPT: &str = "negative-prompt";
/// `x-amz-meta-scene-type`.
pub const META_SCENE_TYPE: &str = "scene-type";
/// `x-amz-meta-batch-size`.
pub const META_BATCH_SIZE: &str = "batch-size";

/// What to generate for one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Parameters {
    /// Prompt or scene template.
    pub background: Background,
    /// Negative prompt.
    pub negative_prompt: Option<String>,
    /// Images to generate.
    pub batch_size: u8,
}

impl Parameters {
    /// Reads the parameters: metadata first, then `defaults`. Both a prompt and a scene type in
    /// the metadata, neither anywhere, or a value the service refuses, is an error that says which.
    pub fn resolve(
        metadata: &HashMap<String, String>,
        defaults: &Defaults,
    ) -> Result<Parameters, String> {
        let meta = |name: &str| {
            metadata
                .get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let background = match (meta(META_PROMPT), meta(META_SCENE_TYPE)) {
            (Some(_), Some(_)) => {
                return Err("the object's metadata has both x-amz-meta-prompt and x-amz-meta-scene-type; keep one".into());
            }
            (Some(prompt), None) => {
                backdrop_core::validate::check_prompt(&prompt)
                    .map_err(|e| format!("x-amz-meta-prompt: {e}"))?;
                Background::Prompt(prompt)
            }
            (None, Some(scene)) => {
                let value: i64 = scene.parse().map_err(|_| {
                    format!("x-amz-meta-scene-type {scene:?} is not a whole number")
                })?;
                Background::SceneType(
                    request::check_scene_type(value)
                        .map_err(|e| format!("x-amz-meta-scene-type: {e}"))?,
                )
            }
            (None, None) => match (&defaults.prompt, defaults.scene_type) {
                (Some(prompt), _) => {
                    backdrop_core::validate::check_prompt(prompt)
                        .map_err(|e| format!("DEFAULT_PROMPT: {e}"))?;
                    Background::Prompt(prompt.clone())
                }
                (None, Some(scene)) => Background::SceneType(
                    request::check_scene_type(scene)
                        .map_err(|e| format!("DEFAULT_SCENE_TYPE: {e}"))?,
                ),
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
        Ok(Parameters {
            background,
            negative_prompt: meta(META_NEGATIVE_PROMPT)
                .or_else(|| defaults.negative_prompt.clone()),
            batch_size: batch_size.count(),
        })
    }

    /// A request for these parameters over `builder` (which has the image).
    pub fn request(
        &self,
        builder: GenerateRequestBuilder,
    ) -> Result<GenerateRequest, backdrop_core::ValidationError> {
        let builder = match &self.background {
            Background::Prompt(prompt) => builder.prompt(prompt.clone()),
            Background::SceneType(scene) => builder.scene_type(i64::from(*scene)),
        };
        let builder = match &self.negative_prompt {
            Some(negative) => builder.negative_prompt(negative.clone()),
            None => builder,
        };
        builder.batch_size(i64::from(self.batch_size)).build()
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
    fn metadata_wins_over_defaults() {
        let defaults = Defaults {
            scene_type: Some(3),
            ..Defaults::default()
        };
        let p = Parameters::resolve(
            &meta(&[("prompt", "a beach"), ("batch-size", "1")]),
            &defaults,
        )
        .unwrap();
        assert_eq!(p.background, Background::Prompt("a beach".into()));
        assert_eq!(p.batch_size, 1);
        let p = Parameters::resolve(&meta(&[]), &defaults).unwrap();
        assert_eq!(p.background, Background::SceneType(3));
        assert_eq!(p.batch_size, 2);
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
    }
}
