//! The predecessor roles a schema allows, compiled: the role names it
//! knows, whether each is required or single, and the type patterns its
//! facts must match. A fact's predecessors are checked against them.

use std::collections::BTreeMap;

use cairn_api::access::Pattern;
use cairn_api::schemas::{RoleConstraint, Violation};
use cairn_fact::{Fact, Hash, PredecessorRef};

use super::schema_walk::escape_pointer_token;

/// One role's constraint, its patterns parsed.
#[derive(Debug)]
struct CompiledRole {
    required: bool,
    many: bool,
    /// `None`: any type.
    type_patterns: Option<Vec<Pattern>>,
}

/// The roles a schema allows; `None` in [`RoleRules::roles`] means any
/// role, unconstrained.
#[derive(Debug)]
pub(crate) struct RoleRules {
    roles: Option<BTreeMap<String, CompiledRole>>,
}

impl RoleRules {
    /// Compiles the `predecessors` of a registration; the error names the
    /// role and the pattern that is wrong.
    pub(crate) fn compile(
        declared: Option<&BTreeMap<String, RoleConstraint>>,
    ) -> Result<RoleRules, String> {
        let Some(declared) = declared else {
            return Ok(RoleRules { roles: None });
        };
        let mut roles = BTreeMap::new();
        for (role, constraint) in declared {
            cairn_fact::validate_role(role).map_err(|error| format!("predecessors: {error}"))?;
            let type_patterns = match &constraint.types {
                None => None,
                Some(patterns) => Some(
                    patterns
                        .iter()
                        .map(|pattern| {
                            Pattern::parse(pattern)
                                .map_err(|error| format!("predecessors.{role}.types: {error}"))
                        })
                        .collect::<Result<Vec<Pattern>, String>>()?,
                ),
            };
            roles.insert(
                role.clone(),
                CompiledRole {
                    required: constraint.required.unwrap_or(false),
                    many: constraint.many.unwrap_or(true),
                    type_patterns,
                },
            );
        }
        Ok(RoleRules { roles: Some(roles) })
    }

    /// Whether some role constrains the types of its facts.
    pub(crate) fn needs_predecessor_types(&self) -> bool {
        self.roles
            .iter()
            .flatten()
            .any(|(_, role)| role.type_patterns.is_some())
    }

    /// Appends the violations of `fact`'s predecessors, by role.
    pub(crate) fn check(
        &self,
        fact: &Fact,
        predecessor_type: &dyn Fn(&Hash) -> Option<String>,
        violations: &mut Vec<Violation>,
    ) {
        let Some(roles) = &self.roles else {
            return;
        };
        for (role, predecessor) in &fact.predecessors {
            let pointer = format!("/predecessors/{}", escape_pointer_token(role));
            let Some(constraint) = roles.get(role) else {
                violations.push(Violation {
                    pointer,
                    rule: "role".into(),
                    message: format!(
                        "role {role:?} is not one the schema allows ({})",
                        role_list(roles)
                    ),
                });
                continue;
            };
            if !constraint.many && matches!(predecessor, PredecessorRef::Many(_)) {
                violations.push(Violation {
                    pointer: pointer.clone(),
                    rule: "many".into(),
                    message: format!(
                        "role {role:?} names one fact, written as a hash string, not an array"
                    ),
                });
            }
            let Some(patterns) = &constraint.type_patterns else {
                continue;
            };
            for hash in predecessor.hashes() {
                // An unknown type is not judged: the fact is not here to tell.
                let Some(type_name) = predecessor_type(hash) else {
                    continue;
                };
                if !patterns.iter().any(|pattern| pattern.matches(&type_name)) {
                    let allowed: Vec<&str> = patterns.iter().map(Pattern::as_str).collect();
                    violations.push(Violation {
                        pointer: pointer.clone(),
                        rule: "role_type".into(),
                        message: format!(
                            "predecessor {} of role {role:?} is a {type_name}, which matches none \
                             of {allowed:?}",
                            hash.to_hex()
                        ),
                    });
                }
            }
        }
        for (role, constraint) in roles {
            let present = fact.predecessors.iter().any(|(named, _)| named == role);
            if constraint.required && !present {
                violations.push(Violation {
                    pointer: format!("/predecessors/{}", escape_pointer_token(role)),
                    rule: "required".into(),
                    message: format!("role {role:?} is required"),
                });
            }
        }
    }
}

fn role_list(roles: &BTreeMap<String, CompiledRole>) -> String {
    if roles.is_empty() {
        return "it allows none".into();
    }
    let names: Vec<String> = roles.keys().map(|role| format!("{role:?}")).collect();
    format!("it allows {}", names.join(", "))
}
