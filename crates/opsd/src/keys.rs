//! `opsd keys create|list|revoke`: key management straight on the store (the data
//! directory, or the PostgreSQL database with `--database-url`), for when the server is
//! down (or not yet started). A running server trusts a key it has
//! verified for up to 5 s, so a revocation made here reaches it within that time; the
//! HTTP API (`DELETE /v1/api_keys/{id}`) revokes at once.

use std::io::Write;
use std::path::Path;

use clap::{Args, Subcommand};
use opsd_domain::{ApiKey, NewApiKey, ProjectScope, Role};
use opsd_store::KeyStore;
use time::format_description::well_known::Rfc3339;

use crate::BoxError;

/// Flags of `opsd keys`.
#[derive(Args)]
pub struct KeysArgs {
    #[command(flatten)]
    store: crate::storage::StoreArgs,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print its secret (shown this once).
    Create {
        /// Human name; recorded as the `user` of operations the key creates.
        #[arg(long)]
        name: String,
        /// reader, producer or admin.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Comma-separated project ids, or `*` for all projects.
        #[arg(long, value_delimiter = ',', required = true)]
        projects: Vec<String>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id.
    Revoke {
        /// The key's id, as `list` shows it.
        id: uuid::Uuid,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("'{s}' is not a role; use reader, producer or admin"))
}

/// Runs one key command.
pub async fn run(args: KeysArgs) -> Result<(), BoxError> {
    let store = args.store.open().await?;
    match args.command {
        KeysCommand::Create {
            name,
            role,
            projects,
        } => {
            let projects = ProjectScope::from_list("--projects", &projects)?;
            let (key, secret) = store
                .create_key(NewApiKey {
                    name,
                    role,
                    projects,
                })
                .await?;
            println!(
                "created key {} ({}, {}, projects {})",
                key.id,
                key.name,
                key.role.as_str(),
                key.projects.to_list().join(",")
            );
            println!("{secret}");
        }
        KeysCommand::List => println!("{}", table(&store.list_keys().await?)),
        KeysCommand::Revoke { id } => {
            let key = store.revoke_key(id).await?;
            println!("revoked {}", describe(&key));
        }
    }
    Ok(())
}

/// Keys as a table, for people (never their secrets).
fn table(keys: &[ApiKey]) -> comfy_table::Table {
    let when = |t: time::OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header([
            "id", "name", "role", "projects", "prefix", "created", "revoked",
        ]);
    for k in keys {
        t.add_row(vec![
            k.id.to_string(),
            k.name.clone(),
            k.role.as_str().to_owned(),
            k.projects.to_list().join(","),
            format!("{}…", k.prefix),
            when(k.created_at),
            k.revoked_at.map(when).unwrap_or_default(),
        ]);
    }
    t
}

fn describe(k: &ApiKey) -> String {
    let when = |t: time::OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    format!(
        "{}  {:<20} {:<8} projects={} prefix={}… created={}{}",
        k.id,
        k.name,
        k.role.as_str(),
        k.projects.to_list().join(","),
        k.prefix,
        when(k.created_at),
        k.revoked_at
            .map(|t| format!(" revoked={}", when(t)))
            .unwrap_or_default()
    )
}

/// On the very first start (no key was ever created), creates an admin key for all
/// projects, prints it once on stdout and writes it to `<data-dir>/admin.key` (0600).
pub async fn ensure_first_admin(store: &dyn KeyStore, data_dir: &Path) -> Result<(), BoxError> {
    if store.has_ever_had_keys().await? {
        return Ok(());
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", data_dir.display()))?;
    let path = data_dir.join("admin.key");
    // Another process starting on the same empty database may have won the race.
    let Some((key, secret)) = store
        .create_first_key(NewApiKey {
            name: "admin".into(),
            role: Role::Admin,
            projects: ProjectScope::All,
        })
        .await?
    else {
        return Ok(());
    };
    write_secret_file(&path, &secret)?;
    tracing::info!(key_id = %key.id, path = %path.display(), "created the first admin key");
    println!(
        "opsd: first start: created admin key {} (also saved to {}, mode 0600):",
        key.id,
        path.display()
    );
    println!("{secret}");
    Ok(())
}

fn write_secret_file(path: &Path, secret: &str) -> Result<(), BoxError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    writeln!(file, "{secret}")?;
    file.sync_all()?;
    Ok(())
}
