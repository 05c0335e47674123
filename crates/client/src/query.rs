//! The operation filters that `list` and `watch` share: one declaration of the fields,
//! the constructor, the setters and the query parameters, so the two builders cannot
//! come to filter differently. Each query type adds its own fields (a list's sort and
//! page size, a watch's starting point).

use opsd_domain::{Kind, OpType, Status};

/// Declares a query type: the shared filters (`project_id`, `kind`, `status`,
/// `op_type`, `resource_id`) as public fields, then the type's own fields, with `new`
/// (documented by `$new_doc`), a setter per filter and `filter_pairs`.
///
/// A macro rather than an embedded filter struct because the fields are public: callers
/// build these types with struct literals and read `query.kind`, which must keep working.
macro_rules! filtered_query {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$field_meta:meta])* pub $field:ident: $ty:ty,)*
        }
        new: $new_doc:literal
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct $name {
            /// Project whose operations to read (required by the server).
            pub project_id: String,
            /// Only this kind.
            pub kind: Option<opsd_domain::Kind>,
            /// Only operations in this status (for a watch: changes that leave one in it).
            pub status: Option<opsd_domain::Status>,
            /// Only this type.
            pub op_type: Option<opsd_domain::OpType>,
            /// Only this resource.
            pub resource_id: Option<String>,
            $($(#[$field_meta])* pub $field: $ty,)*
        }

        impl $name {
            #[doc = $new_doc]
            pub fn new(project_id: impl Into<String>) -> Self {
                $name {
                    project_id: project_id.into(),
                    ..$name::default()
                }
            }

            /// Only this kind.
            pub fn kind(mut self, kind: opsd_domain::Kind) -> Self {
                self.kind = Some(kind);
                self
            }

            /// Only this status.
            pub fn status(mut self, status: opsd_domain::Status) -> Self {
                self.status = Some(status);
                self
            }

            /// Only this type.
            pub fn op_type(mut self, op_type: opsd_domain::OpType) -> Self {
                self.op_type = Some(op_type);
                self
            }

            /// Only this resource.
            pub fn resource_id(mut self, resource_id: impl Into<String>) -> Self {
                self.resource_id = Some(resource_id.into());
                self
            }

            /// The filters as query parameters, `project_id` first.
            fn filter_pairs(&self) -> Vec<(&'static str, String)> {
                $crate::query::filter_pairs(
                    &self.project_id,
                    self.kind,
                    self.status,
                    self.op_type,
                    self.resource_id.as_deref(),
                )
            }
        }
    };
}

pub(crate) use filtered_query;

/// The query parameters of the shared filters; the server names `op_type` `type`.
pub(crate) fn filter_pairs(
    project_id: &str,
    kind: Option<Kind>,
    status: Option<Status>,
    op_type: Option<OpType>,
    resource_id: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut q = vec![("project_id", project_id.to_owned())];
    q.extend(kind.map(|k| ("kind", k.as_str().to_owned())));
    q.extend(status.map(|s| ("status", s.as_str().to_owned())));
    q.extend(op_type.map(|t| ("type", t.as_str().to_owned())));
    q.extend(resource_id.map(|r| ("resource_id", r.to_owned())));
    q
}
