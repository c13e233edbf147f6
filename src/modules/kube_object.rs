//! `kube_object`: desired Kubernetes objects, compared with the live ones on the fields we
//! manage (what the definition sets), applied server-side under field manager `bootstrapctl`.
//! Secret values never show in a diff.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value as Json};

use super::kubectl::{resource_of, Kubectl};
use super::template::opt;
use super::{Module, ModuleError, ResolveCx};
use crate::hoststate::{HostView, KubeRead, ObjectRef, Read};
use crate::plan::{DiffItem, Op, Planned};
use crate::template::{render_yaml, Tpl};

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum State {
    #[default]
    Present,
    Absent,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// One object, or a list of objects (strings may be templates).
    pub definition: Option<serde_yaml::Value>,
    /// A template file rendering to one or more YAML documents.
    pub src: Option<Tpl<String>>,
    pub state: Option<Tpl<State>>,
    pub kubectl: Option<Tpl<String>>,
    pub kubeconfig: Option<Tpl<String>>,
}

#[derive(Debug)]
pub struct KubeObject {
    kubectl: Kubectl,
    objects: Vec<Object>,
    state: State,
}

#[derive(Debug)]
struct Object {
    at: ObjectRef,
    kind: String,
    /// As it will be applied (Secret stringData already turned into data).
    desired: Json,
}

impl Object {
    fn label(&self) -> String {
        self.at.label(&self.kind)
    }
}

/// Shorter Secret values are not registered with the redactor (see `secrets`).
const MIN_SECRET_LEN: usize = 6;

fn invalid(msg: String) -> ModuleError {
    ModuleError::Invalid(msg)
}

fn object_of(kubectl: &Kubectl, mut v: Json) -> Result<Object, ModuleError> {
    let api_version = v["apiVersion"]
        .as_str()
        .ok_or_else(|| invalid("object without apiVersion".into()))?
        .to_string();
    let kind = v["kind"]
        .as_str()
        .ok_or_else(|| invalid("object without kind".into()))?
        .to_string();
    let name = v["metadata"]["name"]
        .as_str()
        .ok_or_else(|| invalid(format!("{kind} without metadata.name")))?
        .to_string();
    let namespace = v["metadata"]["namespace"].as_str().map(str::to_string);
    if kind == "Secret" {
        // Compare and apply `data`: stringData is write-only on the server.
        if let Some(Json::Object(sd)) = v.as_object_mut().and_then(|o| o.remove("stringData")) {
            let data = v
                .as_object_mut()
                .expect("object")
                .entry("data")
                .or_insert_with(|| Json::Object(Map::new()));
            for (k, val) in sd {
                let text = val
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| val.to_string());
                data[&k] = Json::from(base64::engine::general_purpose::STANDARD.encode(text));
            }
        }
    }
    Ok(Object {
        at: kubectl.object(
            &resource_of(&api_version, &kind),
            &name,
            namespace.as_deref(),
        ),
        kind,
        desired: v,
    })
}

impl Args {
    pub fn resolve(&self, cx: &ResolveCx<'_>) -> Result<KubeObject, ModuleError> {
        let docs: Vec<Json> = match (&self.definition, &self.src) {
            (Some(def), None) => {
                let v = render_yaml(cx.templates, def, cx.vars, cx.what)?;
                let j =
                    serde_json::to_value(&v).map_err(|e| invalid(format!("definition: {e}")))?;
                match j {
                    Json::Array(items) => items,
                    one => vec![one],
                }
            }
            (None, Some(src)) => {
                let name = src.resolve(cx.templates, cx.vars, cx.what)?;
                let text = cx.templates.render_file(&name, cx.vars)?;
                let mut out = Vec::new();
                for doc in serde_yaml::Deserializer::from_str(&text) {
                    let v = serde_yaml::Value::deserialize(doc)
                        .map_err(|e| invalid(format!("{name}: {e}")))?;
                    if !v.is_null() {
                        out.push(
                            serde_json::to_value(&v)
                                .map_err(|e| invalid(format!("{name}: {e}")))?,
                        );
                    }
                }
                out
            }
            _ => {
                return Err(invalid(
                    "kube_object needs exactly one of `definition` and `src`".into(),
                ))
            }
        };
        let kubectl = Kubectl::resolve(&self.kubectl, &self.kubeconfig, cx)?;
        Ok(KubeObject {
            objects: docs
                .into_iter()
                .map(|d| object_of(&kubectl, d))
                .collect::<Result<_, _>>()?,
            kubectl,
            state: opt(&self.state, cx)?.unwrap_or_default(),
        })
    }
}

/// The part of `live` that `desired` speaks about, for comparison and diffs.
fn project(desired: &Json, live: &Json) -> Json {
    match (desired, live) {
        (Json::Object(d), Json::Object(l)) => Json::Object(
            d.iter()
                .filter_map(|(k, dv)| l.get(k).map(|lv| (k.clone(), project(dv, lv))))
                .collect(),
        ),
        (_, l) => l.clone(),
    }
}

/// Managed fields: everything the definition sets except what the server owns.
fn managed(desired: &Json) -> Json {
    let mut d = desired.clone();
    if let Some(meta) = d.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        for k in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "managedFields",
            "generation",
        ] {
            meta.remove(k);
        }
    }
    if let Some(o) = d.as_object_mut() {
        o.remove("status");
    }
    d
}

fn masked(kind: &str, v: &Json) -> Json {
    let mut v = v.clone();
    if kind == "Secret" {
        if let Some(Json::Object(data)) = v.get_mut("data") {
            for val in data.values_mut() {
                *val = Json::from(crate::secret::REDACTED);
            }
        }
    }
    v
}

fn yaml(v: &Json) -> String {
    serde_yaml::to_string(v).unwrap_or_default()
}

impl Module for KubeObject {
    fn reads(&self) -> Vec<Read> {
        self.objects
            .iter()
            .map(|o| Read::Kube(KubeRead::Object(o.at.clone())))
            .collect()
    }

    fn secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        for o in self.objects.iter().filter(|o| o.kind == "Secret") {
            if let Some(Json::Object(data)) = o.desired.get("data") {
                for v in data.values().filter_map(|v| v.as_str()) {
                    out.push(v.to_string());
                    if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(v) {
                        out.push(String::from_utf8_lossy(&raw).into_owned());
                    }
                }
                // Flags such as `usage-bootstrap-signing: "true"` are not secrets, and
                // redacting every "true" would garble all output (the JSON report too).
                out.retain(|v| v.len() >= MIN_SECRET_LEN);
            }
        }
        out
    }

    fn plan(&self, view: &HostView) -> Result<Planned, ModuleError> {
        let mut apply_docs = Vec::new();
        let mut ops = Vec::new();
        let mut diffs = Vec::new();
        for o in &self.objects {
            let live = match view.kube_object(&o.at) {
                None => return Err(invalid(format!("{} was not read", o.label()))),
                Some(Err(message)) => {
                    return Err(ModuleError::Host {
                        path: o.label(),
                        message: message.clone(),
                    })
                }
                Some(Ok(live)) => live.clone(),
            };
            let want = managed(&o.desired);
            match (self.state, &live) {
                (State::Absent, None) => {}
                (State::Absent, Some(l)) => {
                    ops.push(Op::KubeDelete {
                        object: o.at.clone(),
                    });
                    diffs.push(DiffItem {
                        subject: o.label(),
                        before: yaml(&masked(&o.kind, &project(&want, l))),
                        after: String::new(),
                        secret: false,
                    });
                }
                (State::Present, Some(l)) if project(&want, l) == want => {}
                (State::Present, _) => {
                    apply_docs.push((o.at.clone(), want.clone()));
                    diffs.push(DiffItem {
                        subject: o.label(),
                        before: live
                            .as_ref()
                            .map(|l| yaml(&masked(&o.kind, &project(&want, l))))
                            .unwrap_or_default(),
                        after: yaml(&masked(&o.kind, &want)),
                        secret: false,
                    });
                }
            }
        }
        if !apply_docs.is_empty() {
            ops.insert(
                0,
                Op::KubeApply {
                    cluster: self.kubectl.cluster.clone(),
                    objects: apply_docs,
                },
            );
        }
        if ops.is_empty() {
            let names: Vec<String> = self.objects.iter().map(Object::label).collect();
            return Ok(Planned::NoChange {
                reason: format!(
                    "{} {}",
                    names.join(", "),
                    if self.state == State::Present {
                        "up to date"
                    } else {
                        "absent"
                    }
                ),
            });
        }
        Ok(Planned::Change { ops, diffs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hoststate::CommandOutput;

    fn module(def: &str) -> KubeObject {
        let args: Args = serde_yaml::from_str(def).unwrap();
        crate::modules::resolve_in_test(minijinja::context! { ns => "kube-public" }, |cx| {
            args.resolve(cx)
        })
    }

    fn view_with(m: &KubeObject, live: &[&str]) -> HostView {
        let mut v = HostView::new();
        for (r, out) in m.reads().iter().zip(live) {
            if let Read::Kube(KubeRead::Object(o)) = r {
                let out = CommandOutput {
                    status: 0,
                    stdout: out.as_bytes().to_vec(),
                    stderr: vec![],
                };
                v.set_kube_object(o, crate::hoststate::kube::parse_object(&out));
            }
        }
        v
    }

    const CM: &str = "definition:\n  apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: cluster-info, namespace: '{{ ns }}'}\n  data: {kubeconfig: 'x: 1'}\n";

    #[test]
    fn absent_object_is_applied_server_side() {
        let m = module(CM);
        let [Read::Kube(read)] = &m.reads()[..] else {
            panic!("{:?}", m.reads())
        };
        assert_eq!(read.command(), "kubectl --kubeconfig /etc/kubernetes/admin.kubeconfig get configmap cluster-info -n kube-public -o json --ignore-not-found");
        let Planned::Change { ops, diffs } = m.plan(&view_with(&m, &[""])).unwrap() else {
            panic!()
        };
        let command = ops[0].kubectl_command().unwrap();
        assert!(command.starts_with("kubectl --kubeconfig /etc/kubernetes/admin.kubeconfig apply --server-side --field-manager=bootstrapctl --force-conflicts -f - <<'__BOOTSTRAPCTL_EOF__'\napiVersion: v1\n"), "{command}");
        assert_eq!(diffs[0].subject, "ConfigMap kube-public/cluster-info");
    }

    #[test]
    fn live_object_with_our_fields_is_converged_whatever_else_it_has() {
        let m = module(CM);
        let live = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cluster-info","namespace":"kube-public","uid":"u","resourceVersion":"7"},"data":{"kubeconfig":"x: 1","jws-kubeconfig-abcdef":"sig"}}"#;
        assert!(matches!(
            m.plan(&view_with(&m, &[live])).unwrap(),
            Planned::NoChange { .. }
        ));
        let changed = live.replace("x: 1", "x: 2");
        assert!(m.plan(&view_with(&m, &[&changed])).unwrap().is_change());
    }

    #[test]
    fn secret_values_are_compared_as_data_and_never_shown() {
        let m = module("definition:\n  apiVersion: v1\n  kind: Secret\n  metadata: {name: s, namespace: kube-system}\n  stringData: {token-secret: f395accd246ae52d}\n");
        assert!(m.secrets().contains(&"f395accd246ae52d".to_string()));
        let live = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s","namespace":"kube-system"},"data":{"token-secret":"b2xkb2xkb2xkb2xkb2xkMQ=="}}"#;
        let Planned::Change { diffs, ops } = m.plan(&view_with(&m, &[live])).unwrap() else {
            panic!()
        };
        assert!(
            !diffs[0].before.contains("b2xk") && !diffs[0].after.contains("ZjM5"),
            "{diffs:?}"
        );
        assert!(diffs[0].after.contains("token-secret: <redacted>"));
        let command = ops[0].kubectl_command().unwrap();
        assert!(
            command.contains("token-secret: ZjM5NWFjY2QyNDZhZTUyZA=="),
            "{command}"
        );
        let same = live.replace("b2xkb2xkb2xkb2xkb2xkMQ==", "ZjM5NWFjY2QyNDZhZTUyZA==");
        assert!(!m.plan(&view_with(&m, &[&same])).unwrap().is_change());
    }
}
