//! Turning policy text into a validated, ready-to-evaluate policy set.
//!
//! Everything here runs off the request path (at start-up and on reloads);
//! the result is an immutable [`Loaded`] that the engine swaps in whole.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::str::FromStr;

use cedar_policy::ffi::DetailedError;
use cedar_policy::{Policy, PolicyId, PolicySet, ValidationMode, Validator};

use super::PolicyError;

/// One policy source: a `*.cedar` file, or in-memory text.
pub(super) struct SourceFile {
    /// Name used in diagnostics, e.g. `apps.cedar`.
    pub name: String,
    /// Prefix of the generated policy ids, e.g. `apps`.
    pub stem: String,
    pub text: String,
}

impl SourceFile {
    pub fn from_text(source_name: &str, text: &str) -> Self {
        let stem = source_name.strip_suffix(".cedar").unwrap_or(source_name);
        let stem = if stem.is_empty() { "inline" } else { stem };
        SourceFile {
            name: source_name.to_owned(),
            stem: stem.to_owned(),
            text: text.to_owned(),
        }
    }
}

/// An active, validated policy set. Immutable once built.
pub(super) struct Loaded {
    pub set: PolicySet,
    /// Cedar policy id (`<stem>:<index>`) -> id reported in decisions
    /// (the `@id` annotation when present, else the Cedar policy id).
    pub labels: HashMap<PolicyId, String>,
    /// Reported ids in load order (files sorted by name, policies in source order).
    pub ordered_labels: Vec<String>,
    pub uses_resource_tags: bool,
    /// Hash of the source names and contents; `reload` compares it.
    pub fingerprint: u64,
    /// Validator warnings (the set was accepted anyway).
    pub warnings: Vec<String>,
}

impl Loaded {
    pub fn label(&self, id: &PolicyId) -> String {
        self.labels.get(id).cloned().unwrap_or_else(|| id.to_string())
    }
}

/// Hash of the file names and contents, in order.
pub(super) fn fingerprint(kind: &str, files: &[SourceFile]) -> u64 {
    let mut h = DefaultHasher::new();
    kind.hash(&mut h);
    for f in files {
        f.name.hash(&mut h);
        f.text.hash(&mut h);
    }
    h.finish()
}

/// Read every `*.cedar` file directly in `dir` (not recursive), sorted by
/// name. Hidden files (editor lock files such as `.#apps.cedar`) are skipped.
pub(super) fn read_dir(dir: &Path) -> Result<Vec<SourceFile>, PolicyError> {
    let io_err = |path: &Path, source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || !name.ends_with(".cedar") {
            continue;
        }
        let path = entry.path();
        // Follows symlinks, so a symlinked policy file counts.
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => names.push(name),
            Ok(_) => {}
            Err(e) => return Err(io_err(&path, e)),
        }
    }
    if names.is_empty() {
        return Err(PolicyError::NoPolicies { dir: dir.to_path_buf() });
    }
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
            let stem = name.strip_suffix(".cedar").unwrap_or(&name).to_owned();
            Ok(SourceFile { name, stem, text })
        })
        .collect()
}

/// Parse, re-id, merge and validate `files` into one policy set.
pub(super) fn build(validator: &Validator, files: &[SourceFile], fingerprint: u64) -> Result<Loaded, PolicyError> {
    let mut set = PolicySet::new();
    let mut labels: HashMap<PolicyId, String> = HashMap::new();
    let mut ordered_labels = Vec::new();
    // reported id -> (file, Cedar id) of the policy that claimed it first
    let mut claimed: HashMap<String, (String, String)> = HashMap::new();
    // Cedar id -> index into `files`, to locate validator diagnostics
    let mut file_of: HashMap<PolicyId, usize> = HashMap::new();
    let mut uses_resource_tags = false;

    for (fi, file) in files.iter().enumerate() {
        let parsed = PolicySet::from_str(&file.text).map_err(|errs| PolicyError::Parse {
            file: file.name.clone(),
            diagnostics: errs
                .iter()
                .map(|e| render(file, None, &DetailedError::from(e)))
                .collect::<Vec<_>>()
                .join("\n"),
        })?;
        if let Some(t) = parsed.templates().next() {
            let d = format!(
                "{}: policy templates (with ?principal or ?resource) are not supported; \
                 write a static policy instead:\n    {}",
                file.name,
                first_line(&t.to_string())
            );
            return Err(PolicyError::Parse {
                file: file.name.clone(),
                diagnostics: d,
            });
        }
        let mut policies: Vec<&Policy> = parsed.policies().collect();
        if policies.is_empty() {
            return Err(PolicyError::EmptyFile {
                file: file.name.clone(),
            });
        }
        // Cedar names the policies of a parsed set "policy0", "policy1", ...
        // in source order; sort on that number to recover the order.
        policies.sort_by_key(|p| source_index(p.id()));

        for (index, policy) in policies.into_iter().enumerate() {
            let cedar_id = format!("{}:{}", file.stem, index);
            let label = match policy.annotation("id") {
                Some(id) if !id.trim().is_empty() => id.to_owned(),
                _ => cedar_id.clone(),
            };
            if let Some((first_file, first_id)) = claimed.get(&label) {
                return Err(PolicyError::DuplicateId {
                    id: label,
                    first: format!("{first_file} ({first_id})"),
                    second: format!("{} ({cedar_id})", file.name),
                });
            }
            claimed.insert(label.clone(), (file.name.clone(), cedar_id.clone()));

            uses_resource_tags |= reads_resource_tags(policy);
            let pid = PolicyId::new(&cedar_id);
            set.add(policy.new_id(pid.clone()))
                .map_err(|e| PolicyError::Validation {
                    diagnostics: format!("{}: {e}", file.name),
                })?;
            labels.insert(pid.clone(), label.clone());
            file_of.insert(pid, fi);
            ordered_labels.push(label);
        }
    }

    let result = validator.validate(&set, ValidationMode::Strict);
    let locate = |pid: &PolicyId| -> Option<(&SourceFile, &str)> {
        let file = &files[*file_of.get(pid)?];
        Some((file, labels.get(pid).map(String::as_str).unwrap_or("?")))
    };
    let describe = |pid: &PolicyId, mut d: DetailedError| match locate(pid) {
        Some((file, label)) => {
            // Cedar prefixes "for policy `<cedar id>`, "; render() names the policy.
            if let Some(rest) = d.message.strip_prefix(&format!("for policy `{pid}`, ")) {
                d.message = rest.to_owned();
            }
            render(file, Some(label), &d)
        }
        None => format!("policy `{pid}`: {}", d.message),
    };
    if !result.validation_passed() {
        let diagnostics = result
            .validation_errors()
            .map(|e| describe(e.policy_id(), DetailedError::from(e)))
            .collect::<Vec<_>>()
            .join("\n");
        return Err(PolicyError::Validation { diagnostics });
    }
    let warnings = result
        .validation_warnings()
        .map(|w| describe(w.policy_id(), DetailedError::from(w)))
        .collect();

    Ok(Loaded {
        set,
        labels,
        ordered_labels,
        uses_resource_tags,
        fingerprint,
        warnings,
    })
}

/// Position of a policy in its file, from the "policyN" id Cedar gives it.
fn source_index(id: &PolicyId) -> usize {
    id.to_string()
        .strip_prefix("policy")
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

/// Does `policy` call `hasTag`/`getTag` on anything but `principal`?
/// Walks the JSON form of the policy; if that is unavailable, falls back to
/// a conservative textual check.
fn reads_resource_tags(policy: &Policy) -> bool {
    fn walk(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Object(map) => map.iter().any(|(key, val)| {
                let tag_op = key == "getTag" || key == "hasTag";
                let on_principal = val.get("left") == Some(&serde_json::json!({ "Var": "principal" }));
                (tag_op && !on_principal) || walk(val)
            }),
            serde_json::Value::Array(items) => items.iter().any(walk),
            _ => false,
        }
    }
    match policy.to_json() {
        Ok(json) => walk(&json),
        Err(_) => {
            let text = policy.to_string();
            text.contains("getTag") || text.contains("hasTag")
        }
    }
}

/// `file:line:col: policy `id`: message (help: ...)` plus the offending line.
fn render(file: &SourceFile, label: Option<&str>, d: &DetailedError) -> String {
    let mut out = file.name.clone();
    let span = d.source_locations.first().map(|l| l.loc.start);
    let pos = span.map(|offset| line_col(&file.text, offset));
    if let Some((line, col)) = pos {
        out.push_str(&format!(":{line}:{col}"));
    }
    out.push_str(": ");
    if let Some(label) = label {
        out.push_str(&format!("policy `{label}`: "));
    }
    out.push_str(&d.message);
    if let Some(help) = &d.help {
        out.push_str(&format!(" (help: {help})"));
    }
    if let Some((line, _)) = pos {
        if let Some(src) = file.text.lines().nth(line - 1) {
            out.push_str(&format!("\n    {line:>4} | {}", src.trim_end()));
        }
    }
    out
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use super::line_col;

    #[test]
    fn line_col_counts_from_one() {
        let t = "ab\ncdé\nf";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 3), (2, 1));
        assert_eq!(line_col(t, 7), (2, 4));
        assert_eq!(line_col(t, 8), (3, 1));
        assert_eq!(line_col(t, 999), (3, 2));
    }
}
