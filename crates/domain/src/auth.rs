//! Who may do what (SECURITY.md): API keys carry a role and the projects they may touch.
//! These are pure rules; keys themselves live in the store and are checked at the HTTP
//! edge.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{ValidationError, validate};

/// What a key may do. Each role includes the ones before it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read APIs: get, list, events, wait, watch.
    Reader,
    /// Reads plus create, update, claim, heartbeat.
    Producer,
    /// Everything, including key management.
    Admin,
}

impl Role {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Producer => "producer",
            Role::Admin => "admin",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "reader" => Some(Role::Reader),
            "producer" => Some(Role::Producer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The projects a key may touch: all of them (`*`), or a listed set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectScope {
    /// Every project, present and future.
    All,
    /// Only these projects.
    Only(BTreeSet<String>),
}

impl ProjectScope {
    /// Builds a scope from the wire list: `["*"]` or project ids (1–100 of them).
    pub fn from_list(field: &str, projects: &[String]) -> Result<Self, ValidationError> {
        if projects.iter().any(|p| p == "*") {
            if projects.len() != 1 {
                return Err(ValidationError::new(
                    field,
                    "'*' stands alone: all projects",
                ));
            }
            return Ok(ProjectScope::All);
        }
        if projects.is_empty() || projects.len() > validate::MAX_LIST_ITEMS {
            return Err(ValidationError::new(
                field,
                format!(
                    "must list 1 to {} project ids, or [\"*\"]",
                    validate::MAX_LIST_ITEMS
                ),
            ));
        }
        for (i, p) in projects.iter().enumerate() {
            validate::project_id(&format!("{field}[{i}]"), p)?;
        }
        Ok(ProjectScope::Only(projects.iter().cloned().collect()))
    }

    /// The wire list.
    pub fn to_list(&self) -> Vec<String> {
        match self {
            ProjectScope::All => vec!["*".into()],
            ProjectScope::Only(set) => set.iter().cloned().collect(),
        }
    }

    /// Whether `project` is inside the scope.
    pub fn contains(&self, project: &str) -> bool {
        match self {
            ProjectScope::All => true,
            ProjectScope::Only(set) => set.contains(project),
        }
    }
}

/// A stored API key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Server-assigned id.
    pub id: Uuid,
    /// Human name; recorded as the `user` of operations it creates.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Where it may do it.
    pub projects: ProjectScope,
    /// The first characters of the key, to recognise it in listings.
    pub prefix: String,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it was revoked; a revoked key authenticates nothing.
    pub revoked_at: Option<OffsetDateTime>,
}

/// A request to create a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// Human name, 1–128 characters.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its projects.
    pub projects: ProjectScope,
}

impl NewApiKey {
    /// Validates the name (the other fields are validated when parsed).
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.name.trim().is_empty() || self.name.len() > validate::MAX_ID_LEN {
            return Err(ValidationError::new(
                "name",
                format!("must be 1 to {} characters", validate::MAX_ID_LEN),
            ));
        }
        validate::text("name", &self.name, validate::MAX_ID_LEN)
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's id.
    pub key_id: Uuid,
    /// The key's name.
    pub name: String,
    /// The key's role.
    pub role: Role,
    /// The key's projects.
    pub projects: ProjectScope,
}

impl From<ApiKey> for Principal {
    fn from(k: ApiKey) -> Self {
        Principal {
            key_id: k.id,
            name: k.name,
            role: k.role,
            projects: k.projects,
        }
    }
}

/// Why a principal may not do something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The role is too weak (403).
    Role {
        /// The role the action needs.
        needed: Role,
    },
    /// The project is outside the key's scope (403 for lists, 404 for single operations).
    Project,
}

impl Principal {
    /// Checks that the caller has at least `needed`.
    pub fn require(&self, needed: Role) -> Result<(), Denied> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(Denied::Role { needed })
        }
    }

    /// Checks role and project together.
    pub fn require_in(&self, needed: Role, project: &str) -> Result<(), Denied> {
        self.require(needed)?;
        if self.projects.contains(project) {
            Ok(())
        } else {
            Err(Denied::Project)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role, projects: &[&str]) -> Principal {
        let list: Vec<String> = projects.iter().map(|s| s.to_string()).collect();
        Principal {
            key_id: Uuid::nil(),
            name: "k".into(),
            role,
            projects: ProjectScope::from_list("projects", &list).unwrap(),
        }
    }

    #[test]
    fn roles_include_weaker_ones() {
        let producer = principal(Role::Producer, &["*"]);
        assert_eq!(producer.require(Role::Reader), Ok(()));
        assert_eq!(producer.require(Role::Producer), Ok(()));
        assert_eq!(
            producer.require(Role::Admin),
            Err(Denied::Role {
                needed: Role::Admin
            })
        );
    }

    #[test]
    fn scopes_limit_projects() {
        let reader = principal(Role::Reader, &["a", "b"]);
        assert_eq!(reader.require_in(Role::Reader, "a"), Ok(()));
        assert_eq!(reader.require_in(Role::Reader, "c"), Err(Denied::Project));
        assert_eq!(
            reader.require_in(Role::Producer, "a"),
            Err(Denied::Role {
                needed: Role::Producer
            })
        );
        assert!(
            principal(Role::Reader, &["*"])
                .require_in(Role::Reader, "anything")
                .is_ok()
        );
    }

    #[test]
    fn scope_lists_are_validated() {
        assert!(ProjectScope::from_list("projects", &[]).is_err());
        assert!(ProjectScope::from_list("projects", &["*".into(), "a".into()]).is_err());
        let e =
            ProjectScope::from_list("projects", &["ok".into(), "bad project".into()]).unwrap_err();
        assert_eq!(e.field, "projects[1]");
    }
}
