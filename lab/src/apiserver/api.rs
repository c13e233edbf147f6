//! Request handling: request info (upstream's RequestInfoFactory rules), authentication,
//! authorization, then discovery, health, version, OpenAPI or the resource verbs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use super::authn::{self, User};
use super::authz::{self, Attrs, Decision, RbacData};
use super::http::{Request, Response};
use super::patch;
use super::resources::{self, ResDef, CERTS};
use super::store::{self, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    AlwaysAllow,
    AlwaysDeny,
    Node,
    Rbac,
}

pub(crate) struct Server {
    pub(crate) store: Arc<Store>,
    pub(crate) modes: Vec<Mode>,
    pub(crate) bootstrap_tokens: bool,
    pub(crate) anonymous: bool,
    pub(crate) verbosity: i64,
    pub(crate) advertise: String,
}

/// A `kind: Status` failure.
pub(crate) fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Response {
    let mut s = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": message, "reason": reason, "code": code});
    if let Some(d) = details {
        s["details"] = d;
    }
    Response::json(code, &s)
}

fn details(r: &ResDef, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": r.resource});
    if !r.group.is_empty() {
        d["group"] = json!(r.group);
    }
    d
}

fn not_found(r: &ResDef, name: &str) -> Response {
    status(
        404,
        "NotFound",
        &format!("{} {name:?} not found", r.qualified()),
        Some(details(r, name)),
    )
}

fn bad_request(msg: &str) -> Response {
    status(400, "BadRequest", msg, None)
}

fn invalid(r: &ResDef, name: &str, causes: &[resources::Cause]) -> Response {
    let msgs: Vec<String> = causes.iter().map(|(f, _, m)| format!("{f}: {m}")).collect();
    let message = if msgs.len() == 1 {
        format!("{} {name:?} is invalid: {}", r.kind, msgs[0])
    } else {
        format!("{} {name:?} is invalid: [{}]", r.kind, msgs.join(", "))
    };
    let causes: Vec<Value> = causes
        .iter()
        .map(|(f, reason, m)| json!({"reason": reason, "message": m, "field": f}))
        .collect();
    let mut d = json!({"name": name, "kind": r.kind, "causes": causes});
    if !r.group.is_empty() {
        d["group"] = json!(r.group);
    }
    status(422, "Invalid", &message, Some(d))
}

fn conflict(r: &ResDef, name: &str) -> Response {
    status(
        409,
        "Conflict",
        &format!("Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again", r.qualified()),
        Some(details(r, name)),
    )
}

/// Where a request points.
#[derive(Debug, Default)]
struct Target {
    group: String,
    version: String,
    resource: String,
    name: String,
    sub: String,
    namespace: String,
}

fn parse_target(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return None,
    };
    if rest.is_empty() {
        return None;
    }
    let mut t = Target {
        group,
        version,
        ..Target::default()
    };
    let mut parts: &[&str] = rest;
    if parts[0] == "namespaces" && parts.len() > 1 {
        t.namespace = parts[1].to_string();
        if parts.len() > 2 && !["status", "finalize"].contains(&parts[2]) {
            parts = &parts[2..];
        }
    }
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    t.resource = parts[0].to_string();
    t.name = parts.get(1).unwrap_or(&"").to_string();
    t.sub = parts.get(2).unwrap_or(&"").to_string();
    Some(t)
}

impl Server {
    pub(crate) fn handle(&self, req: Request) -> Response {
        let started = Instant::now();
        let user_agent = req.header("user-agent").unwrap_or("").to_string();
        let (method, path, remote) = (req.method.clone(), req.path.clone(), req.remote.clone());
        let resp = self.handle_inner(req);
        if self.verbosity >= 4 {
            eprintln!(
                "I{} httplog: verb={method} URI={path} latency={:?} userAgent={user_agent:?} resp={} srcIP={remote:?}",
                klog_time(),
                started.elapsed(),
                resp.code()
            );
        }
        resp
    }

    fn authenticate(&self, req: &Request) -> Result<User, String> {
        if let Some(der) = &req.client_cert {
            if let Some(u) = authn::cert_user(der) {
                return Ok(u);
            }
        }
        // Only the Bearer scheme is a token (upstream's bearertoken authenticator); any other
        // Authorization header (e.g. Basic) is ignored, and an empty token is no token.
        let bearer = req.header("authorization").and_then(|h| {
            let (scheme, token) = h.trim().split_once(' ')?;
            let token = token.trim();
            (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
        });
        if let Some(token) = bearer {
            if !self.bootstrap_tokens {
                return Err("invalid bearer token (no token authenticator is enabled)".into());
            }
            return authn::bootstrap_token(
                token,
                |name| self.store.get("secrets", "kube-system", name),
                time::OffsetDateTime::now_utc(),
            );
        }
        if self.anonymous {
            Ok(User::anonymous())
        } else {
            Err("no credentials".into())
        }
    }

    /// Upstream's impersonation filter: `Impersonate-User` and `Impersonate-Group` headers make
    /// the request the named user's, when the requester may `impersonate` that user and each
    /// group; a non-anonymous impersonated user gets `system:authenticated` unless a group says
    /// otherwise. Without the headers the user is unchanged.
    fn impersonate(&self, req: &Request, requester: User) -> Result<User, String> {
        let Some(name) = req.header("impersonate-user").map(str::to_string) else {
            if req.header("impersonate-group").is_some() {
                return Err("requested Impersonate-Group without Impersonate-User".into());
            }
            return Ok(requester);
        };
        let groups: Vec<String> = req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("impersonate-group"))
            .map(|(_, v)| v.clone())
            .collect();
        let may = |resource: &str, what: &str| {
            let a = Attrs {
                verb: "impersonate".into(),
                resource: resource.into(),
                name: what.into(),
                resource_request: true,
                ..Attrs::default()
            };
            if self.authorize(&requester, &a) {
                Ok(())
            } else {
                Err(format!(
                    "{resource} \"{what}\" is forbidden: User \"{}\" cannot impersonate resource \"{resource}\" in API group \"\" at the cluster scope",
                    requester.name
                ))
            }
        };
        may("users", &name)?;
        for g in &groups {
            may("groups", g)?;
        }
        let mut groups = groups;
        if name != "system:anonymous"
            && !groups
                .iter()
                .any(|g| g == "system:authenticated" || g == "system:unauthenticated")
        {
            groups.push("system:authenticated".into());
        }
        Ok(User {
            name,
            groups,
            uid: String::new(),
        })
    }

    fn rbac_data(&self) -> RbacData {
        RbacData {
            cluster_roles: self.store.list("clusterroles", None).0,
            cluster_role_bindings: self.store.list("clusterrolebindings", None).0,
            roles: self.store.list("roles", None).0,
            role_bindings: self.store.list("rolebindings", None).0,
        }
    }

    pub(crate) fn authorize(&self, u: &User, a: &Attrs) -> bool {
        // system:masters is allowed everything by upstream's privileged-group authorizer.
        if u.groups.iter().any(|g| g == "system:masters") {
            return true;
        }
        let mut rbac: Option<RbacData> = None;
        for m in &self.modes {
            let d = match m {
                Mode::AlwaysAllow => Decision::Allow,
                Mode::AlwaysDeny => Decision::Deny,
                Mode::Node => authz::node(u, a, &|name| {
                    self.store
                        .get("certificatesigningrequests", "", name)
                        .and_then(|c| c["spec"]["username"].as_str().map(str::to_string))
                }),
                Mode::Rbac => authz::rbac(rbac.get_or_insert_with(|| self.rbac_data()), u, a),
            };
            match d {
                Decision::Allow => return true,
                Decision::Deny => return false,
                Decision::NoOpinion => {}
            }
        }
        false
    }

    fn handle_inner(&self, req: Request) -> Response {
        let user = match self.authenticate(&req) {
            Ok(u) => u,
            Err(why) => {
                if self.verbosity >= 2 {
                    eprintln!("E{} authentication failed: {why}", klog_time());
                }
                return status(401, "Unauthorized", "Unauthorized", None);
            }
        };
        let user = match self.impersonate(&req, user) {
            Ok(u) => u,
            Err(msg) => return status(403, "Forbidden", &msg, None),
        };
        let target = parse_target(&req.path);
        let verb_of = |has_name: bool| -> String {
            let watch = matches!(req.param("watch"), Some("1") | Some("true"));
            match req.method.as_str() {
                "GET" | "HEAD" if watch => "watch",
                "GET" | "HEAD" if has_name => "get",
                "GET" | "HEAD" => "list",
                "POST" => "create",
                "PUT" => "update",
                "PATCH" => "patch",
                "DELETE" if has_name => "delete",
                "DELETE" => "deletecollection",
                _ => "",
            }
            .to_string()
        };
        let Some(t) = target else {
            // Non-resource request.
            let a = Attrs {
                verb: match req.method.as_str() {
                    "GET" | "HEAD" => "get",
                    "POST" => "post",
                    "PUT" => "put",
                    "PATCH" => "patch",
                    "DELETE" => "delete",
                    _ => "",
                }
                .into(),
                path: req.path.clone(),
                resource_request: false,
                ..Attrs::default()
            };
            if !self.authorize(&user, &a) {
                return status(
                    403,
                    "Forbidden",
                    &authz::forbidden_message(&user, &a),
                    Some(json!({})),
                );
            }
            return self.non_resource(&req);
        };
        let a = Attrs {
            verb: verb_of(!t.name.is_empty()),
            group: t.group.clone(),
            resource: t.resource.clone(),
            subresource: t.sub.clone(),
            name: t.name.clone(),
            namespace: t.namespace.clone(),
            resource_request: true,
            path: req.path.clone(),
        };
        if !self.authorize(&user, &a) {
            let mut d = json!({"name": a.name, "kind": a.resource});
            if !a.group.is_empty() {
                d["group"] = json!(a.group);
            }
            return status(
                403,
                "Forbidden",
                &authz::forbidden_message(&user, &a),
                Some(d),
            );
        }
        let Some(r) = resources::find(&t.group, &t.version, &t.resource) else {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource",
                Some(json!({})),
            );
        };
        if !t.sub.is_empty() && !r.subresources.contains(&t.sub.as_str()) {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource",
                Some(json!({})),
            );
        }
        // A cluster-scoped resource under /namespaces/x, or a namespaced one outside a namespace
        // other than for a list/watch across all namespaces, does not exist.
        let all_namespaces_read = r.namespaced && t.name.is_empty() && req.method == "GET";
        let scope_ok = if r.namespaced {
            !t.namespace.is_empty() || all_namespaces_read
        } else {
            t.namespace.is_empty() || r.resource == "namespaces"
        };
        if !scope_ok {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource",
                Some(json!({})),
            );
        }
        if r.review {
            return self.review(r, &user, &req);
        }
        let ns = if r.namespaced {
            t.namespace.as_str()
        } else {
            ""
        };
        match a.verb.as_str() {
            "get" => match self.store.get(r.resource, ns, &t.name) {
                Some(o) => Response::json(200, &self.output(r, &req, o)),
                None => not_found(r, &t.name),
            },
            "list" => self.list(
                r,
                &req,
                if r.namespaced && !ns.is_empty() {
                    Some(ns)
                } else {
                    None
                },
            ),
            "watch" => self.watch(
                r,
                &req,
                if r.namespaced && !ns.is_empty() {
                    Some(ns)
                } else {
                    None
                },
                &t.name,
            ),
            "create" => self.create(r, &req, &user, ns),
            "update" => self.update(r, &req, &user, ns, &t.name, &t.sub),
            "patch" => self.patch(r, &req, &user, ns, &t.name, &t.sub),
            "delete" => self.delete(r, &req, ns, &t.name),
            _ => status(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
                Some(json!({})),
            ),
        }
    }

    fn non_resource(&self, req: &Request) -> Response {
        let p = req.path.trim_end_matches('/');
        match p {
            "/healthz" | "/livez" | "/readyz" => Response::text(200, "ok"),
            "/version" => Response::json(
                200,
                &json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0-bootstrapctl-lab-standin",
                        "gitCommit": "", "gitTreeState": "clean", "buildDate": "1970-01-01T00:00:00Z",
                        "goVersion": "none (bootstrapctl lab stand-in)", "compiler": "rustc",
                        "platform": format!("linux/{}", std::env::consts::ARCH)}),
            ),
            "/api" => Response::json(200, &resources::api_versions(&self.advertise)),
            "/apis" => Response::json(200, &resources::api_group_list()),
            "/openapi/v3" => Response::json(200, &resources::openapi_v3_root()),
            _ => {
                let segs: Vec<&str> = p.trim_start_matches('/').split('/').collect();
                let found = match segs.as_slice() {
                    ["api", v] => resources::resource_list("", v),
                    ["apis", g] => resources::api_group(g),
                    ["apis", g, v] => resources::resource_list(g, v),
                    ["openapi", "v3", "api", v] => resources::openapi_v3_gv("", v),
                    ["openapi", "v3", "apis", g, v] => resources::openapi_v3_gv(g, v),
                    _ => None,
                };
                match found {
                    Some(v) => Response::json(200, &v),
                    None => status(
                        404,
                        "NotFound",
                        "the server could not find the requested resource",
                        Some(json!({})),
                    ),
                }
            }
        }
    }

    /// The object as returned: with kind/apiVersion, or a one-row Table when asked for.
    fn output(&self, r: &ResDef, req: &Request, o: Value) -> Value {
        if wants_table(req) {
            resources::table(
                r.resource,
                std::slice::from_ref(&o),
                self.store.resource_version(),
                true,
            )
        } else {
            o
        }
    }

    fn list(&self, r: &ResDef, req: &Request, ns: Option<&str>) -> Response {
        let (items, rv) = self.store.list(r.resource, ns);
        let items = match filter(req, items) {
            Ok(i) => i,
            Err(e) => return bad_request(&e),
        };
        if wants_table(req) {
            return Response::json(200, &resources::table(r.resource, &items, rv, true));
        }
        Response::json(
            200,
            &json!({"kind": format!("{}List", r.kind), "apiVersion": r.api_version(),
                    "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
        )
    }

    fn watch(&self, r: &'static ResDef, req: &Request, ns: Option<&str>, name: &str) -> Response {
        // A watch of one name is a list watch with a metadata.name field selector.
        let mut req = req.clone();
        if !name.is_empty() {
            req.query.retain(|(k, _)| k != "fieldSelector");
            req.query
                .push(("fieldSelector".into(), format!("metadata.name={name}")));
        }
        let since: u64 = match req.param("resourceVersion").unwrap_or("") {
            "" | "0" => 0,
            v => match v.parse() {
                Ok(n) => n,
                Err(_) => return bad_request(&format!("invalid resource version: {v}")),
            },
        };
        let timeout = req
            .param("timeoutSeconds")
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(1800)
            .min(3600);
        let table = wants_table(&req);
        let store: Arc<Store> = self.store.clone();
        let ns = ns.map(str::to_string);
        let name = (!name.is_empty()).then(|| name.to_string());
        if let Err(e) = filter(&req, vec![]) {
            return bad_request(&e);
        }
        Response::Stream {
            content_type: "application/json",
            run: Box::new(move |w| {
                let deadline = Instant::now() + Duration::from_secs(timeout);
                let mut last = since;
                let mut first_table = true;
                if since == 0 {
                    // rv 0 / unset: synthetic ADDED events for what exists now.
                    let (items, rv) = store.list(r.resource, ns.as_deref());
                    let items = filter(&req, items).unwrap_or_default();
                    for o in items {
                        let obj = event_object(r, o, table, &mut first_table, rv);
                        let line = json!({"type": "ADDED", "object": obj});
                        if !w.chunk(format!("{line}\n").as_bytes()) {
                            return;
                        }
                    }
                    last = rv;
                }
                while Instant::now() < deadline {
                    let evs = match store.events_after(
                        last,
                        r.resource,
                        ns.as_deref(),
                        name.as_deref(),
                        Duration::from_secs(5),
                    ) {
                        Ok((e, upto)) => {
                            last = last.max(upto);
                            e
                        }
                        Err(()) => {
                            let st = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                "status": "Failure", "message": format!("too old resource version: {last}"), "reason": "Expired", "code": 410}});
                            w.chunk(format!("{st}\n").as_bytes());
                            return;
                        }
                    };
                    for e in evs {
                        // The selectors give back what they keep: one copy of the shared
                        // object per event and watch.
                        let kept = filter(&req, vec![(*e.object).clone()]).unwrap_or_default();
                        let Some(object) = kept.into_iter().next() else {
                            continue;
                        };
                        let obj = event_object(r, object, table, &mut first_table, e.rv);
                        let line = json!({"type": e.kind, "object": obj});
                        if !w.chunk(format!("{line}\n").as_bytes()) {
                            return;
                        }
                    }
                    if w.broken {
                        return;
                    }
                }
            }),
        }
    }

    /// Checks every new object passes, by create or by an apply that creates: its type, its
    /// namespace field, and that the namespace exists.
    fn admit_new(&self, r: &ResDef, obj: &mut Value, ns: &str) -> Result<(), Response> {
        check_type(r, obj)?;
        check_namespace(r, obj, ns)?;
        if r.namespaced && self.store.get("namespaces", "", ns).is_none() {
            return Err(status(
                404,
                "NotFound",
                &format!("namespaces {ns:?} not found"),
                Some(json!({"name": ns, "kind": "namespaces"})),
            ));
        }
        Ok(())
    }

    fn create(&self, r: &ResDef, req: &Request, user: &User, ns: &str) -> Response {
        let mut obj = match body_object(req) {
            Ok(o) => o,
            Err(e) => return e,
        };
        if let Err(e) = self.admit_new(r, &mut obj, ns) {
            return e;
        }
        let meta = store::meta_mut(&mut obj);
        if meta.get("name").and_then(Value::as_str).is_none_or_empty() {
            if let Some(prefix) = meta
                .get("generateName")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                let name = format!("{prefix}{}", random_suffix());
                meta.insert("name".into(), json!(name));
            }
        }
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "managedFields",
        ] {
            meta.remove(k);
        }
        self.prepare_create(r, &mut obj, user);
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let errs = resources::validate(r, &obj, None);
        if !errs.is_empty() {
            return invalid(r, &name, &errs);
        }
        record_manager(&mut obj, req, "Update", r);
        if is_dry_run(req) {
            return Response::json(201, &obj);
        }
        match self.store.create(r.resource, obj) {
            Ok(o) => Response::json(201, &o),
            Err(_) => status(
                409,
                "AlreadyExists",
                &format!("{} {name:?} already exists", r.qualified()),
                Some(details(r, &name)),
            ),
        }
    }

    /// Server-set fields on create, as upstream's PrepareForCreate strategies do.
    fn prepare_create(&self, r: &ResDef, obj: &mut Value, user: &User) {
        match r.resource {
            "secrets" => {
                if obj["type"].as_str().is_none_or_empty() {
                    obj["type"] = json!("Opaque");
                }
                fold_string_data(obj);
            }
            "configmaps" => {}
            "namespaces" => {
                let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
                obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
                obj["status"] = json!({"phase": "Active"});
            }
            "certificatesigningrequests" => {
                obj["spec"]["username"] = json!(user.name);
                obj["spec"]["uid"] = json!(user.uid);
                obj["spec"]["groups"] = json!(user.groups);
                if let Some(spec) = obj["spec"].as_object_mut() {
                    spec.remove("extra");
                }
                obj["status"] = json!({});
            }
            _ => {}
        }
    }

    fn update(
        &self,
        r: &ResDef,
        req: &Request,
        user: &User,
        ns: &str,
        name: &str,
        sub: &str,
    ) -> Response {
        let mut obj = match body_object(req) {
            Ok(o) => o,
            Err(e) => return e,
        };
        if let Err(e) = check_type(r, &mut obj) {
            return e;
        }
        if let Err(e) = check_namespace(r, &mut obj, ns) {
            return e;
        }
        if obj["metadata"]["name"].as_str() != Some(name) {
            return bad_request(&format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                obj["metadata"]["name"].as_str().unwrap_or("")
            ));
        }
        self.write(r, req, user, ns, name, sub, obj, "Update")
    }

    /// Common tail of update and patch: subresource rules, validation, precondition, store.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        r: &ResDef,
        req: &Request,
        user: &User,
        ns: &str,
        name: &str,
        sub: &str,
        mut obj: Value,
        op: &str,
    ) -> Response {
        let Some(old) = self.store.get(r.resource, ns, name) else {
            return not_found(r, name);
        };
        let precondition = obj["metadata"]["resourceVersion"]
            .as_str()
            .map(str::to_string);
        match (r.resource, sub) {
            (_, "status") | ("namespaces", "finalize") => {
                // Only status changes.
                let mut keep = old.clone();
                keep["status"] = obj["status"].clone();
                if r.resource == "certificatesigningrequests" {
                    // Approval conditions are only changed through /approval.
                    let approval = |v: &Value| -> Vec<Value> {
                        v["status"]["conditions"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default()
                            .into_iter()
                            .filter(|c| c["type"] == "Approved" || c["type"] == "Denied")
                            .collect()
                    };
                    let mut conds: Vec<Value> = obj["status"]["conditions"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|c| c["type"] != "Approved" && c["type"] != "Denied")
                        .collect();
                    conds.splice(0..0, approval(&old));
                    keep["status"]["conditions"] = json!(conds);
                    let newly_signed = obj["status"]["certificate"]
                        .as_str()
                        .is_some_and(|c| !c.is_empty())
                        && old["status"]["certificate"].as_str().is_none_or_empty();
                    if newly_signed {
                        let approved = approval(&old)
                            .iter()
                            .any(|c| c["type"] == "Approved" && c["status"] == "True");
                        if !approved {
                            return invalid(
                                r,
                                name,
                                &[(
                                    "status.certificate".into(),
                                    "FieldValueForbidden",
                                    "Forbidden: certificate can only be set on approved requests"
                                        .into(),
                                )],
                            );
                        }
                        if let Err(resp) = self.signer_permission(user, &old, "sign", name) {
                            return resp;
                        }
                    }
                }
                obj = keep;
            }
            ("certificatesigningrequests", "approval") => {
                let mut keep = old.clone();
                keep["status"]["conditions"] = obj["status"]["conditions"].clone();
                let old_c = &old["status"]["conditions"];
                if keep["status"]["conditions"] != *old_c {
                    if let Err(resp) = self.signer_permission(user, &old, "approve", name) {
                        return resp;
                    }
                }
                obj = keep;
            }
            ("certificatesigningrequests", "") => {
                // Only metadata changes through the main resource.
                obj["spec"] = old["spec"].clone();
                obj["status"] = old["status"].clone();
            }
            ("nodes", "") | ("namespaces", "") => {
                obj["status"] = old["status"].clone();
            }
            ("secrets", "") => {
                if obj["type"].as_str().is_none_or_empty() {
                    obj["type"] = old["type"].clone();
                }
                fold_string_data(&mut obj);
            }
            _ => {}
        }
        if r.resource == "namespaces" {
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
        }
        let errs = resources::validate(r, &obj, Some(&old));
        if !errs.is_empty() {
            return invalid(r, name, &errs);
        }
        if op != "Apply" {
            record_manager(&mut obj, req, op, r);
        }
        if is_dry_run(req) {
            return Response::json(200, &obj);
        }
        match self.store.update(r.resource, obj, precondition.as_deref()) {
            Ok(o) => Response::json(200, &o),
            Err(StoreError::Conflict) => conflict(r, name),
            Err(_) => not_found(r, name),
        }
    }

    /// Upstream's CertificateApproval / CertificateSigning admission: the user needs `verb` on
    /// `signers` named the CSR's signerName (or `<domain>/*`).
    fn signer_permission(
        &self,
        user: &User,
        csr: &Value,
        verb: &str,
        name: &str,
    ) -> Result<(), Response> {
        let signer = csr["spec"]["signerName"].as_str().unwrap_or("");
        let wildcard = format!("{}/*", signer.split('/').next().unwrap_or(""));
        for n in [signer, wildcard.as_str()] {
            let a = Attrs {
                verb: verb.into(),
                group: CERTS.into(),
                resource: "signers".into(),
                name: n.into(),
                resource_request: true,
                ..Attrs::default()
            };
            if self.authorize(user, &a) {
                return Ok(());
            }
        }
        Err(status(
            403,
            "Forbidden",
            &format!("certificatesigningrequests.certificates.k8s.io {name:?} is forbidden: user not permitted to {verb} requests with signerName {signer:?}"),
            Some(json!({"name": name, "group": CERTS, "kind": "certificatesigningrequests"})),
        ))
    }

    fn patch(
        &self,
        r: &ResDef,
        req: &Request,
        user: &User,
        ns: &str,
        name: &str,
        sub: &str,
    ) -> Response {
        let ct = req
            .header("content-type")
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let body = String::from_utf8_lossy(&req.body).into_owned();
        if ct == "application/apply-patch+yaml" {
            return self.apply(r, req, user, ns, name, sub, &body);
        }
        let patch_doc: Value = match serde_json::from_str(&body) {
            Ok(v) => v,
            Err(e) => return bad_request(&format!("error decoding patch: {e}")),
        };
        let Some(old) = self.store.get(r.resource, ns, name) else {
            return not_found(r, name);
        };
        let mut obj = old.clone();
        match ct.as_str() {
            "application/merge-patch+json" => patch::merge_patch(&mut obj, &patch_doc),
            "application/strategic-merge-patch+json" => patch::strategic_merge(&mut obj, &patch_doc),
            "application/json-patch+json" => {
                if let Err(e) = patch::json_patch(&mut obj, &patch_doc) {
                    return status(422, "Invalid", &e, None);
                }
            }
            other => {
                return status(415, "UnsupportedMediaType", &format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"), None)
            }
        }
        if obj["metadata"]["name"].as_str() != Some(name)
            || obj["metadata"]["namespace"] != old["metadata"]["namespace"]
        {
            return bad_request(
                "metadata.name and metadata.namespace cannot be changed by a patch",
            );
        }
        self.write(r, req, user, ns, name, sub, obj, "Update")
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        r: &ResDef,
        req: &Request,
        user: &User,
        ns: &str,
        name: &str,
        sub: &str,
        body: &str,
    ) -> Response {
        let Some(manager) = req.param("fieldManager").filter(|m| !m.is_empty()) else {
            return status(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch", None);
        };
        let manager = manager.to_string();
        let applied: Value = match serde_yaml::from_str::<serde_yaml::Value>(body)
            .map_err(|e| e.to_string())
            .and_then(|y| serde_json::to_value(y).map_err(|e| e.to_string()))
        {
            Ok(v) if v.is_object() => v,
            Ok(_) => return bad_request("apply patch must be an object"),
            Err(e) => return bad_request(&format!("error decoding YAML: {e}")),
        };
        if applied["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n != name)
        {
            return bad_request(&format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                applied["metadata"]["name"].as_str().unwrap_or("")
            ));
        }
        let fields = patch::fields_v1(&applied);
        let entry = json!({"manager": manager, "operation": "Apply", "apiVersion": r.api_version(),
                           "time": store::now_rfc3339(), "fieldsType": "FieldsV1", "fieldsV1": fields});
        match self.store.get(r.resource, ns, name) {
            None if sub.is_empty() => {
                // Apply creates.
                let mut obj = applied;
                if let Err(e) = self.admit_new(r, &mut obj, ns) {
                    return e;
                }
                obj["metadata"]["name"] = json!(name);
                self.prepare_create(r, &mut obj, user);
                let errs = resources::validate(r, &obj, None);
                if !errs.is_empty() {
                    return invalid(r, name, &errs);
                }
                obj["metadata"]["managedFields"] = json!([entry]);
                if is_dry_run(req) {
                    return Response::json(201, &obj);
                }
                match self.store.create(r.resource, obj) {
                    Ok(o) => Response::json(201, &o),
                    Err(_) => conflict(r, name),
                }
            }
            None => not_found(r, name),
            Some(old) => {
                let mut obj = old.clone();
                let mut a = applied;
                if let Some(m) = a["metadata"].as_object_mut() {
                    for k in [
                        "uid",
                        "resourceVersion",
                        "creationTimestamp",
                        "generation",
                        "managedFields",
                    ] {
                        m.remove(k);
                    }
                }
                patch::apply_merge(&mut obj, &a);
                let mut mf: Vec<Value> = old["metadata"]["managedFields"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                mf.retain(|e| !(e["manager"] == json!(manager) && e["operation"] == "Apply"));
                mf.push(entry);
                obj["metadata"]["managedFields"] = json!(mf);
                obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
                self.write(r, req, user, ns, name, sub, obj, "Apply")
            }
        }
    }

    fn delete(&self, r: &ResDef, req: &Request, ns: &str, name: &str) -> Response {
        let Some(cur) = self.store.get(r.resource, ns, name) else {
            return not_found(r, name);
        };
        if r.resource == "namespaces" && ["default", "kube-system", "kube-public"].contains(&name) {
            return status(
                403,
                "Forbidden",
                &format!("namespaces {name:?} is forbidden: this namespace may not be deleted"),
                Some(details(r, name)),
            );
        }
        if let Ok(opts) = serde_json::from_slice::<Value>(&req.body) {
            if let Some(want) = opts["preconditions"]["resourceVersion"].as_str() {
                if cur["metadata"]["resourceVersion"].as_str() != Some(want) {
                    return conflict(r, name);
                }
            }
        }
        if is_dry_run(req) {
            return Response::json(200, &cur);
        }
        if r.resource == "namespaces" {
            self.store.delete_namespace_contents(name);
        }
        match self.store.delete(r.resource, ns, name) {
            Some(o) => {
                let mut d = details(r, name);
                d["uid"] = o["metadata"]["uid"].clone();
                Response::json(
                    200,
                    &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d}),
                )
            }
            None => not_found(r, name),
        }
    }

    /// SubjectAccessReview, SelfSubjectAccessReview, SelfSubjectReview (create only).
    fn review(&self, r: &ResDef, user: &User, req: &Request) -> Response {
        if req.method != "POST" {
            return status(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
                Some(json!({})),
            );
        }
        let body: Value = match parse_body(req) {
            Ok(v) => v,
            Err(e) => return e,
        };
        if r.resource == "selfsubjectreviews" {
            return Response::json(
                201,
                &json!({"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": null},
                "status": {"userInfo": {"username": user.name, "uid": user.uid, "groups": user.groups}}}),
            );
        }
        let spec = &body["spec"];
        let subject = if r.resource == "subjectaccessreviews" {
            User {
                name: spec["user"].as_str().unwrap_or("").to_string(),
                groups: spec["groups"]
                    .as_array()
                    .map(|g| {
                        g.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
                uid: spec["uid"].as_str().unwrap_or("").to_string(),
            }
        } else {
            user.clone()
        };
        if r.resource == "subjectaccessreviews"
            && subject.name.is_empty()
            && subject.groups.is_empty()
        {
            return invalid(
                r,
                "",
                &[(
                    "spec.user".into(),
                    "FieldValueInvalid",
                    "Invalid value: \"\": at least one of user or group must be specified".into(),
                )],
            );
        }
        let a = if let Some(ra) = spec["resourceAttributes"].as_object() {
            let s = |k: &str| ra.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            Attrs {
                verb: s("verb"),
                group: s("group"),
                resource: s("resource"),
                subresource: s("subresource"),
                name: s("name"),
                namespace: s("namespace"),
                resource_request: true,
                path: String::new(),
            }
        } else {
            let n = &spec["nonResourceAttributes"];
            Attrs {
                verb: n["verb"].as_str().unwrap_or("").into(),
                path: n["path"].as_str().unwrap_or("").into(),
                resource_request: false,
                ..Attrs::default()
            }
        };
        let allowed = self.authorize(&subject, &a);
        let mut out = body.clone();
        out["apiVersion"] = json!("authorization.k8s.io/v1");
        out["kind"] = json!(r.kind);
        out["status"] = json!({"allowed": allowed});
        if !allowed {
            out["status"]["reason"] = json!("");
        } else {
            out["status"]["reason"] = json!("allowed by the lab stand-in's authorizers");
        }
        Response::json(201, &out)
    }
}

trait EmptyStr {
    fn is_none_or_empty(&self) -> bool;
}
impl EmptyStr for Option<&str> {
    fn is_none_or_empty(&self) -> bool {
        self.is_none_or(str::is_empty)
    }
}

fn event_object(r: &ResDef, o: Value, table: bool, first: &mut bool, rv: u64) -> Value {
    if table {
        let t = resources::table(r.resource, std::slice::from_ref(&o), rv, *first);
        *first = false;
        t
    } else {
        o
    }
}

fn wants_table(req: &Request) -> bool {
    req.header("accept").is_some_and(|a| a.contains("as=Table"))
}

fn is_dry_run(req: &Request) -> bool {
    req.query.iter().any(|(k, v)| k == "dryRun" && v == "All")
}

fn random_suffix() -> String {
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let uid = store::new_uid();
    uid.bytes()
        .filter(u8::is_ascii_hexdigit)
        .take(5)
        .map(|b| ALPHA[(b as usize) % ALPHA.len()] as char)
        .collect()
}

fn parse_body(req: &Request) -> Result<Value, Response> {
    let ct = req.header("content-type").unwrap_or("application/json");
    if ct.starts_with("application/vnd.kubernetes.protobuf") {
        return super::proto::decode(&req.body)
            .map_err(|e| status(415, "UnsupportedMediaType", &e, None));
    }
    if ct.contains("yaml") {
        serde_yaml::from_slice::<serde_yaml::Value>(&req.body)
            .map_err(|e| e.to_string())
            .and_then(|y| serde_json::to_value(y).map_err(|e| e.to_string()))
            .map_err(|e| bad_request(&format!("error decoding YAML: {e}")))
    } else {
        serde_json::from_slice(&req.body).map_err(|e| {
            bad_request(&format!(
                "json: cannot unmarshal the request body: {e} (content-type {ct:?}, {} bytes)",
                req.body.len()
            ))
        })
    }
}

fn body_object(req: &Request) -> Result<Value, Response> {
    let v = parse_body(req)?;
    if !v.is_object() {
        return Err(bad_request("the request body must be a JSON object"));
    }
    Ok(v)
}

/// kind/apiVersion must match the endpoint when given; they are filled in otherwise.
fn check_type(r: &ResDef, obj: &mut Value) -> Result<(), Response> {
    let want = r.api_version();
    match obj["apiVersion"].as_str() {
        Some(v) if v != want => {
            return Err(bad_request(&format!(
            "the API version in the data ({v}) does not match the expected API version ({want})"
        )))
        }
        _ => obj["apiVersion"] = json!(want),
    }
    match obj["kind"].as_str() {
        Some(k) if k != r.kind => {
            return Err(bad_request(&format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                r.kind
            )))
        }
        _ => obj["kind"] = json!(r.kind),
    }
    Ok(())
}

fn check_namespace(r: &ResDef, obj: &mut Value, ns: &str) -> Result<(), Response> {
    if !r.namespaced {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        return Ok(());
    }
    match obj["metadata"]["namespace"].as_str() {
        Some(n) if !n.is_empty() && n != ns => Err(bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            store::meta_mut(obj).insert("namespace".into(), json!(ns));
            Ok(())
        }
    }
}

/// Secret `stringData` is write-only: merged into `data` (base64) and dropped.
fn fold_string_data(obj: &mut Value) {
    let Some(sd) = obj.as_object_mut().and_then(|o| o.remove("stringData")) else {
        return;
    };
    if let Some(m) = sd.as_object() {
        if !obj["data"].is_object() {
            obj["data"] = json!({});
        }
        for (k, v) in m {
            let s = v.as_str().unwrap_or("");
            obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(s));
        }
    }
}

/// A managedFields entry for an Update-style write (simplified: top-level fields only).
fn record_manager(obj: &mut Value, req: &Request, op: &str, r: &ResDef) {
    let manager = req
        .param("fieldManager")
        .map(str::to_string)
        .unwrap_or_else(|| {
            req.header("user-agent")
                .unwrap_or("unknown")
                .split('/')
                .next()
                .unwrap_or("unknown")
                .to_string()
        });
    let mut mf: Vec<Value> = obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    mf.retain(|e| !(e["manager"] == json!(manager) && e["operation"] == json!(op)));
    let mut fields = obj.clone();
    if let Some(m) = fields.as_object_mut() {
        m.remove("status");
        if let Some(md) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            md.retain(|k, _| k == "labels" || k == "annotations");
        }
    }
    mf.push(json!({"manager": manager, "operation": op, "apiVersion": r.api_version(),
                   "time": store::now_rfc3339(), "fieldsType": "FieldsV1", "fieldsV1": patch::fields_v1(&fields)}));
    store::meta_mut(obj).insert("managedFields".into(), json!(mf));
}

// --- selectors -------------------------------------------------------------------------------

fn split_top(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

fn label_matches(sel: &str, labels: &serde_json::Map<String, Value>) -> Result<bool, String> {
    for req in split_top(sel) {
        let req = req.trim();
        let get = |k: &str| labels.get(k.trim()).and_then(Value::as_str);
        let ok = if let Some((k, v)) = req.split_once("!=") {
            get(k) != Some(v.trim())
        } else if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
            get(k) == Some(v.trim())
        } else if let Some(k) = req.strip_prefix('!') {
            get(k).is_none()
        } else if let Some((k, rest)) = req.split_once(" notin ").or_else(|| req.split_once(" in "))
        {
            let set: Vec<&str> = rest
                .trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split(',')
                .map(str::trim)
                .collect();
            let inside = get(k).is_some_and(|v| set.contains(&v));
            if req.contains(" notin ") {
                !inside
            } else {
                inside
            }
        } else if req
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            && !req.is_empty()
        {
            get(req).is_some()
        } else {
            return Err(format!("unable to parse requirement: {req}"));
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn field_value<'a>(o: &'a Value, field: &str) -> Option<&'a str> {
    let mut cur = o;
    for p in field.split('.') {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn filter(req: &Request, items: Vec<Value>) -> Result<Vec<Value>, String> {
    let labels = req.param("labelSelector").unwrap_or("").to_string();
    let fields = req.param("fieldSelector").unwrap_or("").to_string();
    let mut reqs = Vec::new();
    for f in split_top(&fields) {
        let f = f.trim().to_string();
        let (k, v, eq) = if let Some((k, v)) = f.split_once("!=") {
            (k.to_string(), v.to_string(), false)
        } else if let Some((k, v)) = f.split_once("==").or_else(|| f.split_once('=')) {
            (k.to_string(), v.to_string(), true)
        } else {
            return Err(format!("invalid selector: '{f}'; can't understand '{f}'"));
        };
        if ![
            "metadata.name",
            "metadata.namespace",
            "type",
            "spec.signerName",
            "spec.unschedulable",
            "status.phase",
        ]
        .contains(&k.as_str())
        {
            return Err(format!("field label not supported: {k}"));
        }
        reqs.push((k, v, eq));
    }
    let mut out = Vec::new();
    for o in items {
        let empty = serde_json::Map::new();
        let l = o["metadata"]["labels"].as_object().unwrap_or(&empty);
        if !labels.is_empty() && !label_matches(&labels, l)? {
            continue;
        }
        if reqs
            .iter()
            .all(|(k, v, eq)| (field_value(&o, k).unwrap_or("") == v) == *eq)
        {
            out.push(o);
        }
    }
    Ok(out)
}

pub(crate) fn klog_time() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:02}{:02} {:02}:{:02}:{:02}.{:06}",
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.microsecond()
    )
}
