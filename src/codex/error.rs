//! The error every translation step reports: a client mistake that becomes a 400 naming the
//! OpenAI parameter at fault. Its own module, so that the OpenAI types and the translation can
//! both use it without depending on each other.

/// A client error found while translating: becomes a 400 `invalid_request_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TranslateError {
    /// What is wrong, in a sentence.
    pub message: String,
    /// The offending OpenAI parameter (`model`, `messages[3]`, `tools[0]`, ...).
    pub param: Option<String>,
}

impl TranslateError {
    /// An error about one parameter.
    pub fn new(message: impl Into<String>, param: &str) -> Self {
        Self {
            message: message.into(),
            param: Some(param.to_owned()),
        }
    }

    /// An error about the body as a whole.
    pub fn body(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            param: None,
        }
    }
}
