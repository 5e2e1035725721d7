//! Admin roles and the one access policy of `/admin`.
//!
//! Every `/admin` request is decided by [`required`]: a table of path prefixes (and methods)
//! with the least role they need, and a default for everything else, so that a route added
//! later is covered without a decision of its own: reads (`GET`, `HEAD`) need a viewer, every
//! other method an operator. Settings, admins and webhooks are the owner's alone.

use actix_web::http::Method;

/// What an admin may do; each role may do everything of the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, strum::EnumIter)]
pub enum Role {
    /// Reads what an operator can read.
    Viewer,
    /// Manages keys and accounts, reads statistics and logs.
    Operator,
    /// Everything, including settings and the admins.
    Owner,
}

impl Role {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Owner => "owner",
        }
    }

    /// A role by its name.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    /// The role of a stored name; an unknown one reads as the least role.
    pub fn of_stored(name: &str) -> Role {
        Role::parse(name).unwrap_or(Role::Viewer)
    }
}

/// Who may make a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the sign-in steps and the console's static files.
    Public,
    /// Any signed-in admin, for their own account (profile, password, second factor).
    SignedIn,
    /// A signed-in admin with at least this role.
    Role(Role),
}

/// Which methods a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Methods {
    Any,
    Reads,
}

/// One line of the policy: a path (exact, or a prefix when it ends with `*`), the methods, and
/// the access they need.
struct Rule {
    path: &'static str,
    methods: Methods,
    access: Access,
}

const fn rule(path: &'static str, methods: Methods, access: Access) -> Rule {
    Rule {
        path,
        methods,
        access,
    }
}

/// The policy, first match wins; what no line matches falls to [`default_access`].
const POLICY: &[Rule] = &[
    // The console's page and assets, and the sign-in steps.
    rule("/admin", Methods::Reads, Access::Public),
    rule("/admin/", Methods::Reads, Access::Public),
    rule("/admin/assets/*", Methods::Reads, Access::Public),
    rule("/admin/login", Methods::Any, Access::Public),
    rule("/admin/login/totp", Methods::Any, Access::Public),
    // One's own account.
    rule("/admin/logout", Methods::Any, Access::SignedIn),
    rule("/admin/profile", Methods::Any, Access::SignedIn),
    rule("/admin/me", Methods::Any, Access::SignedIn),
    rule("/admin/change-password", Methods::Any, Access::SignedIn),
    rule("/admin/totp/*", Methods::Any, Access::SignedIn),
    // The owner's alone, reads included.
    rule("/admin/settings*", Methods::Any, Access::Role(Role::Owner)),
    rule("/admin/admins*", Methods::Any, Access::Role(Role::Owner)),
    rule("/admin/webhooks*", Methods::Any, Access::Role(Role::Owner)),
    // A read that hands out account secrets (refresh tokens) is an operator's.
    rule(
        "/admin/tokens/export",
        Methods::Reads,
        Access::Role(Role::Operator),
    ),
    rule("/admin/audit*", Methods::Reads, Access::Role(Role::Viewer)),
];

/// Reads need a viewer, everything else an operator.
fn default_access(method: &Method) -> Access {
    if is_read(method) {
        Access::Role(Role::Viewer)
    } else {
        Access::Role(Role::Operator)
    }
}

fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

/// Who may make `method path` (a path under `/admin`).
pub fn required(method: &Method, path: &str) -> Access {
    POLICY
        .iter()
        .find(|r| {
            let methods = match r.methods {
                Methods::Any => true,
                Methods::Reads => is_read(method),
            };
            let path_matches = match r.path.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => path == r.path,
            };
            methods && path_matches
        })
        .map_or_else(|| default_access(method), |r| r.access)
}

/// Whether `role` may make a request that needs `access` (a signed-in admin is assumed).
pub fn allows(role: Role, access: Access) -> bool {
    match access {
        Access::Public | Access::SignedIn => true,
        Access::Role(min) => role >= min,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_covers_paths_nobody_listed() {
        assert_eq!(
            required(&Method::GET, "/admin/logs/export"),
            Access::Role(Role::Viewer)
        );
        assert_eq!(
            required(&Method::POST, "/admin/tokens/bulk"),
            Access::Role(Role::Operator)
        );
        assert_eq!(
            required(&Method::POST, "/admin/playground"),
            Access::Role(Role::Operator)
        );
        assert_eq!(
            required(&Method::GET, "/admin/webhooks/3/deliveries"),
            Access::Role(Role::Owner)
        );
        assert_eq!(
            required(&Method::GET, "/admin/settings"),
            Access::Role(Role::Owner)
        );
        assert_eq!(required(&Method::POST, "/admin/login"), Access::Public);
        assert_eq!(
            required(&Method::GET, "/admin/assets/app.js"),
            Access::Public
        );
        assert_eq!(
            required(&Method::POST, "/admin/assets/app.js"),
            Access::Role(Role::Operator)
        );
    }

    #[test]
    fn roles_are_ordered() {
        assert!(allows(Role::Owner, Access::Role(Role::Operator)));
        assert!(allows(Role::Operator, Access::Role(Role::Viewer)));
        assert!(!allows(Role::Viewer, Access::Role(Role::Operator)));
        assert!(!allows(Role::Operator, Access::Role(Role::Owner)));
        for role in <Role as strum::IntoEnumIterator>::iter() {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
    }
}
