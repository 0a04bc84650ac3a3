//! deploy/: the kustomize base and overlays render (with the preinstalled
//! `kubectl kustomize`, offline), every object parses into its k8s-openapi
//! type with nothing left over, and the invariants hold: replicas, RBAC
//! limited to leases, probes, a locked-down securityContext, the
//! NetworkPolicy's ports, and a ConfigMap whose pipelines validate.

mod common;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde_json::Value;

fn render(overlay: &str) -> Vec<Value> {
    let out = std::process::Command::new("kubectl")
        .args(["kustomize", "--load-restrictor", "LoadRestrictionsNone"])
        .arg(common::root().join("deploy").join(overlay))
        .output()
        .expect("kubectl (the preinstalled client)");
    assert!(out.status.success(), "kubectl kustomize {overlay}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    serde_saphyr::from_multiple::<Value>(&text).expect("YAML")
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), strip_nulls(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// Parses into `T` and back: anything the type does not know (a typo, a
/// field at the wrong level) would be lost on the way and fail here.
fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value) -> T {
    let parsed: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{}: {e}", doc["kind"]));
    let back = strip_nulls(&serde_json::to_value(&parsed).expect("serialize"));
    assert_eq!(back, strip_nulls(doc), "{} {} has fields its type does not know", doc["kind"], doc["metadata"]["name"]);
    parsed
}

struct Rendered {
    deployment: Deployment,
    role: Role,
    policy: NetworkPolicy,
    pdb: PodDisruptionBudget,
    config: ConfigMap,
    service: Service,
}

fn check_all(overlay: &str) -> Rendered {
    let docs = render(overlay);
    let (mut deployment, mut role, mut policy, mut pdb, mut config, mut service) = (None, None, None, None, None, None);
    for doc in &docs {
        match doc["kind"].as_str().unwrap_or_default() {
            "Namespace" => drop(typed::<Namespace>(doc)),
            "ServiceAccount" => drop(typed::<ServiceAccount>(doc)),
            "RoleBinding" => {
                let b = typed::<RoleBinding>(doc);
                assert_eq!(b.role_ref.name, "dbintel-leases");
                assert_eq!(b.subjects.unwrap_or_default()[0].name, "dbintel");
            }
            "Role" => role = Some(typed::<Role>(doc)),
            "Deployment" => deployment = Some(typed::<Deployment>(doc)),
            "NetworkPolicy" => policy = Some(typed::<NetworkPolicy>(doc)),
            "PodDisruptionBudget" => pdb = Some(typed::<PodDisruptionBudget>(doc)),
            "ConfigMap" => config = Some(typed::<ConfigMap>(doc)),
            "Service" => service = Some(typed::<Service>(doc)),
            other => panic!("{overlay}: unexpected {other}"),
        }
        assert_eq!(doc["metadata"]["namespace"].as_str().unwrap_or("dbintel"), "dbintel");
    }
    let r = Rendered {
        deployment: deployment.expect("Deployment"),
        role: role.expect("Role"),
        policy: policy.expect("NetworkPolicy"),
        pdb: pdb.expect("PodDisruptionBudget"),
        config: config.expect("ConfigMap"),
        service: service.expect("Service"),
    };

    // RBAC: leases, and only these verbs
    let rules = r.role.rules.clone().unwrap_or_default();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].api_groups.clone().unwrap_or_default(), ["coordination.k8s.io"]);
    assert_eq!(rules[0].resources.clone().unwrap_or_default(), ["leases"]);
    assert_eq!(rules[0].verbs, ["get", "list", "watch", "create", "update", "patch"]);

    let spec = r.deployment.spec.clone();
    let pod = spec.template.spec.clone().expect("pod spec");
    let labels = spec.template.metadata.clone().and_then(|m| m.labels).unwrap_or_default();
    assert_eq!(labels.get("app.kubernetes.io/name").map(String::as_str), Some("dbintel"));
    assert_eq!(spec.selector.match_labels.clone().unwrap_or_default().get("app.kubernetes.io/name").map(String::as_str), Some("dbintel"));
    assert_eq!(pod.service_account_name.as_deref(), Some("dbintel"));
    let psc = pod.security_context.clone().expect("pod securityContext");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert!(psc.run_as_user.is_some_and(|u| u != 0));
    assert_eq!(psc.seccomp_profile.map(|p| p.type_), Some("RuntimeDefault".to_string()));
    assert!(pod.topology_spread_constraints.is_some_and(|t| !t.is_empty()));
    let c = &pod.containers[0];
    let sc = c.security_context.clone().expect("container securityContext");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.capabilities.and_then(|c| c.drop).unwrap_or_default(), ["ALL"]);
    let probe = |p: &Option<k8s_openapi::api::core::v1::Probe>| p.clone().and_then(|p| p.http_get).and_then(|h| h.path);
    assert_eq!(probe(&c.liveness_probe).as_deref(), Some("/healthz"));
    assert_eq!(probe(&c.readiness_probe).as_deref(), Some("/readyz"));
    let resources = c.resources.clone().expect("resources");
    assert!(resources.requests.is_some_and(|r| r.contains_key("memory") && r.contains_key("cpu")));
    assert!(resources.limits.is_some_and(|r| r.contains_key("memory")));
    let env = c.env.clone().unwrap_or_default();
    for (name, path) in [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")] {
        let field = env.iter().find(|e| e.name == name).and_then(|e| e.value_from.clone()).and_then(|v| v.field_ref).map(|f| f.field_path);
        assert_eq!(field.as_deref(), Some(path), "{name} from the downward API");
    }
    assert!(c.env_from.clone().unwrap_or_default().iter().any(|e| e.secret_ref.as_ref().is_some_and(|s| s.name == "dbintel-secrets")));
    assert!(!format!("{:?}", r.deployment).to_lowercase().contains("password"), "no secret values in the manifests");

    // NetworkPolicy: in only to metrics; out to DNS, API, databases, OTLP
    let np = r.policy.spec.clone().expect("policy spec");
    assert_eq!(np.policy_types.clone().unwrap_or_default(), ["Ingress", "Egress"]);
    let ports = |rules: Vec<Vec<k8s_openapi::api::networking::v1::NetworkPolicyPort>>| -> Vec<i32> {
        let mut p: Vec<i32> = rules
            .into_iter()
            .flatten()
            .filter_map(|p| match p.port {
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => Some(n),
                _ => None,
            })
            .collect();
        p.sort_unstable();
        p.dedup();
        p
    };
    assert_eq!(ports(np.ingress.unwrap_or_default().into_iter().map(|r| r.ports.unwrap_or_default()).collect()), [9464]);
    assert_eq!(
        ports(np.egress.unwrap_or_default().into_iter().map(|r| r.ports.unwrap_or_default()).collect()),
        [53, 443, 3306, 4317, 4318, 5432, 6443]
    );
    assert_eq!(
        r.service.spec.clone().and_then(|s| s.selector).unwrap_or_default().get("app.kubernetes.io/name").map(String::as_str),
        Some("dbintel")
    );
    assert!(r.pdb.spec.clone().and_then(|s| s.selector).is_some(), "a PDB without a selector protects nothing");
    r
}

/// The ConfigMap's files, written out as the kubelet mounts them, must
/// validate.
fn validate_config(config: &ConfigMap, name: &str) -> String {
    let dir = common::scratch(name);
    let data = config.data.clone().unwrap_or_default();
    for file in ["postgres.pipe", "mysql.pipe", "sanitize_pii.pipe", "newrelic.pipe", "cluster.pipe"] {
        assert!(data.contains_key(file), "{file} in the ConfigMap");
    }
    for (file, text) in &data {
        std::fs::write(dir.join(file), text).unwrap();
    }
    let out = common::dbintel(&["validate", "--deny-warnings", dir.to_str().unwrap()], common::ALL_ENV);
    assert_eq!(common::code(&out), 0, "{}{}", common::text(&out.stdout), common::text(&out.stderr));
    data.get("cluster.pipe").cloned().unwrap_or_default()
}

#[test]
fn the_base_renders_valid_objects_with_the_invariants() {
    let r = check_all("base");
    assert_eq!(r.deployment.spec.replicas, Some(3));
    assert!(validate_config(&r.config, "deploy-base").contains("mode = leader"));
}

#[test]
fn the_new_relic_overlays_keep_the_invariants_and_pick_the_region() {
    for (overlay, endpoint) in [("overlays/newrelic-us", None), ("overlays/newrelic-eu", Some("https://otlp.eu01.nr-data.net:4317"))] {
        let r = check_all(overlay);
        let spec = r.deployment.spec.clone();
        assert_eq!(spec.replicas, Some(3), "{overlay}");
        let env = spec.template.spec.expect("pod").containers[0].env.clone().unwrap_or_default();
        let set = env.iter().find(|e| e.name == "OTEL_EXPORTER_OTLP_ENDPOINT").and_then(|e| e.value.clone());
        assert_eq!(set.as_deref(), endpoint, "{overlay}");
        validate_config(&r.config, overlay.replace('/', "-").as_str());
    }
}

#[test]
fn the_dev_overlay_runs_one_replica_without_election() {
    let r = check_all("overlays/dev");
    assert_eq!(r.deployment.spec.replicas, Some(1));
    let cluster = validate_config(&r.config, "deploy-dev");
    assert!(cluster.contains("mode = none"), "{cluster}");
}

#[test]
fn the_secret_example_holds_placeholders_only() {
    let text = std::fs::read_to_string(common::root().join("deploy/secret.example.yaml")).unwrap();
    let doc: Value = serde_saphyr::from_str(&text).expect("YAML");
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(doc).expect("a Secret");
    for (key, value) in secret.string_data.unwrap_or_default() {
        assert!(value.contains("CHANGE-ME"), "{key} must be a placeholder");
    }
}
