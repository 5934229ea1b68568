//! The review kinds: questions a client asks the server, answered in the response and
//! never stored. `kubectl auth can-i` sends a SelfSubjectAccessReview (`--list`: a
//! SelfSubjectRulesReview), `kubectl auth whoami` a SelfSubjectReview; controllers and
//! webhooks use SubjectAccessReview and LocalSubjectAccessReview.

use rkube_apimachinery::{ApiError, Cause};
use rkube_registry::ResourceDef;
use serde_json::{Value, json};

use crate::auth::{Attributes, Authorizer, Decision, UserInfo};

/// Fills in the `status` of the review `obj` as `user` asked it.
pub fn answer(
    authorizer: &dyn Authorizer,
    user: &UserInfo,
    def: &ResourceDef,
    url_namespace: Option<&str>,
    mut obj: Value,
) -> Result<Value, ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(format!("the body of a {} must be a JSON object", def.kind)));
    }
    obj["apiVersion"] = json!(def.api_version());
    obj["kind"] = json!(def.kind);
    let status = match def.kind {
        "SelfSubjectReview" => json!({"userInfo": {"username": user.username, "groups": user.groups}}),
        "SelfSubjectAccessReview" => access(authorizer, user, def, &obj["spec"])?,
        "SubjectAccessReview" => {
            let asked = subject(def, &obj["spec"])?;
            access(authorizer, &asked, def, &obj["spec"])?
        }
        "LocalSubjectAccessReview" => {
            let ns = url_namespace.unwrap_or("");
            let spec_ns = obj["spec"]["resourceAttributes"]["namespace"].as_str().unwrap_or("");
            if obj["spec"]["resourceAttributes"].is_null() || spec_ns != ns {
                return Err(invalid(
                    def,
                    "spec.resourceAttributes.namespace",
                    format!("Invalid value: {spec_ns:?}: must match metadata.namespace"),
                ));
            }
            let asked = subject(def, &obj["spec"])?;
            access(authorizer, &asked, def, &obj["spec"])?
        }
        "SelfSubjectRulesReview" => rules(authorizer, user, obj["spec"]["namespace"].as_str().unwrap_or("")),
        other => return Err(ApiError::internal(format!("no review handler for {other}"))),
    };
    obj["status"] = status;
    let m = rkube_apimachinery::meta::metadata_mut(&mut obj);
    m.insert("creationTimestamp".into(), Value::Null);
    Ok(obj)
}

fn invalid(def: &ResourceDef, field: &str, message: String) -> ApiError {
    ApiError::invalid(
        def.group,
        def.kind,
        "",
        format!("{}.{} \"\" is invalid: {field}: {message}", def.kind, def.group),
        vec![Cause { reason: "FieldValueInvalid".into(), message, field: field.into() }],
    )
}

/// The user a (Local)SubjectAccessReview asks about.
fn subject(def: &ResourceDef, spec: &Value) -> Result<UserInfo, ApiError> {
    let username = spec["user"].as_str().unwrap_or("").to_string();
    let groups: Vec<String> =
        spec["groups"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect();
    if username.is_empty() && groups.is_empty() {
        return Err(invalid(
            def,
            "spec.user",
            "Invalid value: \"\": at least one of user or group must be specified".into(),
        ));
    }
    Ok(UserInfo { username, groups })
}

fn access(authorizer: &dyn Authorizer, user: &UserInfo, def: &ResourceDef, spec: &Value) -> Result<Value, ApiError> {
    let ra = &spec["resourceAttributes"];
    let nra = &spec["nonResourceAttributes"];
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    let (verb, group, resource, subresource, namespace, name, path) = match (ra.is_object(), nra.is_object()) {
        (true, false) => (
            s(ra, "verb"),
            s(ra, "group"),
            s(ra, "resource"),
            s(ra, "subresource"),
            s(ra, "namespace"),
            s(ra, "name"),
            String::new(),
        ),
        (false, true) => {
            (s(nra, "verb"), String::new(), String::new(), String::new(), String::new(), String::new(), s(nra, "path"))
        }
        _ => {
            return Err(invalid(
                def,
                "spec.resourceAttributes",
                "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified"
                    .into(),
            ));
        }
    };
    let attrs = Attributes {
        user,
        verb: &verb,
        group: &group,
        resource: &resource,
        subresource: &subresource,
        namespace: &namespace,
        name: &name,
        path: &path,
    };
    Ok(match authorizer.authorize(&attrs) {
        Decision::Allow => json!({"allowed": true}),
        Decision::Deny(reason) => json!({"allowed": false, "reason": reason}),
    })
}

fn rules(authorizer: &dyn Authorizer, user: &UserInfo, namespace: &str) -> Value {
    // The authorizer has no rule listing yet: ask it about everything, as a
    // deny-or-allow-all answer is all AlwaysAllow can give.
    let attrs =
        Attributes { user, verb: "*", group: "*", resource: "*", subresource: "", namespace, name: "", path: "" };
    match authorizer.authorize(&attrs) {
        Decision::Allow => json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        }),
        Decision::Deny(reason) => json!({
            "resourceRules": [], "nonResourceRules": [], "incomplete": true, "evaluationError": reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AlwaysAllow;

    struct DenySecrets;
    impl Authorizer for DenySecrets {
        fn authorize(&self, attrs: &Attributes<'_>) -> Decision {
            if attrs.resource == "secrets" { Decision::Deny("secrets are private".into()) } else { Decision::Allow }
        }
    }

    fn def(kind: &str) -> &'static ResourceDef {
        rkube_registry::RESOURCES.iter().find(|d| d.kind == kind).expect("registered")
    }

    fn admin() -> UserInfo {
        UserInfo { username: "admin".into(), groups: vec!["system:masters".into()] }
    }

    #[test]
    fn access_reviews_ask_the_authorizer() {
        let ask = |resource: &str| json!({"spec": {"resourceAttributes": {"verb": "get", "resource": resource, "namespace": "default"}}});
        let d = def("SelfSubjectAccessReview");
        let got = answer(&DenySecrets, &admin(), d, None, ask("pods")).unwrap();
        assert_eq!(got["status"], json!({"allowed": true}));
        assert_eq!(got["kind"], "SelfSubjectAccessReview");
        let got = answer(&DenySecrets, &admin(), d, None, ask("secrets")).unwrap();
        assert_eq!(got["status"]["allowed"], false);
        assert_eq!(got["status"]["reason"], "secrets are private");
        assert_eq!(answer(&AlwaysAllow, &admin(), d, None, json!({"spec": {}})).unwrap_err().code(), 422);
        assert_eq!(answer(&AlwaysAllow, &admin(), d, None, json!("x")).unwrap_err().code(), 400);
    }

    #[test]
    fn subject_and_local_reviews_need_a_subject_and_matching_namespace() {
        let sar = def("SubjectAccessReview");
        let spec = json!({"spec": {"user": "bob", "resourceAttributes": {"verb": "list", "resource": "secrets"}}});
        assert_eq!(answer(&DenySecrets, &admin(), sar, None, spec).unwrap()["status"]["allowed"], false);
        let nobody = json!({"spec": {"resourceAttributes": {"verb": "list", "resource": "pods"}}});
        assert_eq!(answer(&AlwaysAllow, &admin(), sar, None, nobody).unwrap_err().code(), 422);
        let local = def("LocalSubjectAccessReview");
        let spec = json!({"spec": {"user": "bob", "resourceAttributes": {"verb": "get", "resource": "pods", "namespace": "a"}}});
        assert!(answer(&AlwaysAllow, &admin(), local, Some("a"), spec.clone()).is_ok());
        assert_eq!(answer(&AlwaysAllow, &admin(), local, Some("b"), spec).unwrap_err().code(), 422);
    }

    #[test]
    fn who_am_i_and_rules() {
        let got = answer(&AlwaysAllow, &admin(), def("SelfSubjectReview"), None, json!({})).unwrap();
        assert_eq!(got["status"]["userInfo"], json!({"username": "admin", "groups": ["system:masters"]}));
        let got =
            answer(&AlwaysAllow, &admin(), def("SelfSubjectRulesReview"), None, json!({"spec": {"namespace": "x"}}))
                .unwrap();
        assert_eq!(got["status"]["resourceRules"][0]["verbs"], json!(["*"]));
    }
}
