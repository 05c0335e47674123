//! Limits and character sets for everything a producer sends, checked by `validate`
//! and published in the API's schema (`operation`'s `ToSchema` attributes).

/// Longest project, resource or request id.
pub const MAX_ID_LEN: usize = 128;
/// Longest free-text field (messages, descriptions), in characters.
pub const MAX_TEXT_LEN: usize = 4096;
/// Longest short label (user, region, zone, codes), in characters.
pub const MAX_LABEL_LEN: usize = 256;
/// Longest target link, in characters.
pub const MAX_LINK_LEN: usize = 2048;
/// Most entries in `details.changes`.
pub const MAX_CHANGES: usize = 256;
/// Most items in one array value of a diff.
pub const MAX_ARRAY_ITEMS: usize = 1000;
/// Most items in `error.errors` or in one PATCH's `warnings`, and data pairs per warning.
pub const MAX_LIST_ITEMS: usize = 100;
/// Most warnings an operation accumulates.
pub const MAX_TOTAL_WARNINGS: usize = 1000;

/// The JSON Schema pattern of `validate::text`: no control characters but newline and tab.
pub const TEXT_PATTERN: &str = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$";

/// The JSON Schema pattern of `validate::project_id`.
pub const PROJECT_ID_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$";
