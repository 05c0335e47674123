//! The `regexp()` SQL function behind the Google filter's regular-expression form (the
//! translation itself is shared, in `opsd_store::sql`): Rust's `regex`, RE2 syntax,
//! linear-time matching, as SECURITY.md promises.

use rusqlite::functions::FunctionFlags;

/// Registers `regexp(pattern, text)` on a connection: 1 when the (already anchored)
/// pattern matches, NULL when `text` is NULL. Compiled patterns are cached per statement.
pub fn register_regexp(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "regexp",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let re = ctx.get_or_create_aux(
                0,
                |v| -> Result<regex::Regex, Box<dyn std::error::Error + Send + Sync>> {
                    Ok(regex::Regex::new(v.as_str()?)?)
                },
            )?;
            let text: Option<String> = ctx.get(1)?;
            Ok(text.map(|t| re.is_match(&t)))
        },
    )
}
