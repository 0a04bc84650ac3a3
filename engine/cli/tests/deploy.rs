//! deploy/: the kustomize base and overlays render with plain `kubectl
//! kustomize` (the preinstalled client, offline, no flags) — also as a
//! remote base cloned from git — every object parses into its k8s-openapi
//! type with nothing left over, and the invariants hold: replicas, RBAC
//! limited to leases and to the verbs engine/cluster calls, probes, a
//! locked-down securityContext, memory headroom, the admin endpoints off
//! the port the NetworkPolicy opens, ingress only from what scrapes,
//! egress only to listed addresses, and a ConfigMap whose pipelines are
//! the shipped ones and validate. The examples (Secret, targets file) and
//! the Dockerfile's stripped build are checked too.

mod common;

/// The pipelines the ConfigMap carries (deploy/sync-pipelines.sh copies the
/// same list).
const SHIPPED_PIPELINES: &[&str] = &["postgres.pipe", "mysql.pipe", "sanitize_pii.pipe", "newrelic.pipe"];

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde_json::Value;

use std::path::Path;
use std::process::Command;

/// `kubectl kustomize TARGET`, with no flags: what `kubectl apply -k` does.
fn kustomize(target: &str) -> Vec<Value> {
    let out = Command::new("kubectl").args(["kustomize", target]).output().expect("kubectl (the preinstalled client)");
    assert!(out.status.success(), "kubectl kustomize {target}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    serde_saphyr::from_multiple::<Value>(&text).expect("YAML")
}

fn render(overlay: &str) -> Vec<Value> {
    kustomize(common::root().join("deploy").join(overlay).to_str().expect("utf-8 path"))
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
    policies: Vec<NetworkPolicy>,
    pdb: PodDisruptionBudget,
    config: ConfigMap,
    service: Service,
}

fn check_all(overlay: &str) -> Rendered {
    let docs = render(overlay);
    let (mut deployment, mut role, mut pdb, mut config, mut service) = (None, None, None, None, None);
    let mut policies = Vec::new();
    for doc in &docs {
        match doc["kind"].as_str().unwrap_or_default() {
            "Namespace" => drop(typed::<Namespace>(doc)),
            "ServiceAccount" => drop(typed::<ServiceAccount>(doc)),
            "RoleBinding" => {
                let b = typed::<RoleBinding>(doc);
                assert_eq!(b.role_ref.name, "dbintel-leases", "{overlay}: the binding grants the lease role");
                assert_eq!(b.subjects.unwrap_or_default()[0].name, "dbintel", "{overlay}: to the dbintel service account");
            }
            "Role" => role = Some(typed::<Role>(doc)),
            "Deployment" => deployment = Some(typed::<Deployment>(doc)),
            "NetworkPolicy" => policies.push(typed::<NetworkPolicy>(doc)),
            "PodDisruptionBudget" => pdb = Some(typed::<PodDisruptionBudget>(doc)),
            "ConfigMap" => config = Some(typed::<ConfigMap>(doc)),
            "Service" => service = Some(typed::<Service>(doc)),
            other => panic!("{overlay}: unexpected {other}"),
        }
        assert_eq!(
            doc["metadata"]["namespace"].as_str().unwrap_or("dbintel"),
            "dbintel",
            "{overlay}: every object in the dbintel namespace: {doc}"
        );
    }
    let r = Rendered {
        deployment: deployment.expect("Deployment"),
        role: role.expect("Role"),
        policies,
        pdb: pdb.expect("PodDisruptionBudget"),
        config: config.expect("ConfigMap"),
        service: service.expect("Service"),
    };

    // RBAC: leases, and only these verbs
    let rules = r.role.rules.clone().unwrap_or_default();
    assert_eq!(rules.len(), 1, "{overlay}: one rule: {rules:?}");
    assert_eq!(rules[0].api_groups.clone().unwrap_or_default(), ["coordination.k8s.io"], "{overlay}: {rules:?}");
    assert_eq!(rules[0].resources.clone().unwrap_or_default(), ["leases"], "{overlay}: {rules:?}");
    let mut verbs = rules[0].verbs.clone();
    verbs.sort();
    assert_eq!(verbs, lease_verbs_the_code_calls(), "{overlay}: the Role grants exactly the verbs engine/cluster calls");

    let spec = r.deployment.spec.clone();
    let pod = spec.template.spec.clone().expect("pod spec");
    let labels = spec.template.metadata.clone().and_then(|m| m.labels).unwrap_or_default();
    assert_eq!(labels.get("app.kubernetes.io/name").map(String::as_str), Some("dbintel"), "{overlay}: {labels:?}");
    assert_eq!(
        spec.selector.match_labels.clone().unwrap_or_default().get("app.kubernetes.io/name").map(String::as_str),
        Some("dbintel"),
        "{overlay}: the selector matches the pod labels"
    );
    assert_eq!(pod.service_account_name.as_deref(), Some("dbintel"), "{overlay}");
    let psc = pod.security_context.clone().expect("pod securityContext");
    assert_eq!(psc.run_as_non_root, Some(true), "{overlay}: {psc:?}");
    assert!(psc.run_as_user.is_some_and(|u| u != 0), "{overlay}: a non-root uid: {psc:?}");
    assert_eq!(psc.seccomp_profile.map(|p| p.type_), Some("RuntimeDefault".to_string()), "{overlay}");
    assert!(pod.topology_spread_constraints.is_some_and(|t| !t.is_empty()), "{overlay}: replicas spread over nodes");
    let c = &pod.containers[0];
    let sc = c.security_context.clone().expect("container securityContext");
    assert_eq!(sc.read_only_root_filesystem, Some(true), "{overlay}: {sc:?}");
    assert_eq!(sc.allow_privilege_escalation, Some(false), "{overlay}: {sc:?}");
    assert_eq!(sc.capabilities.and_then(|c| c.drop).unwrap_or_default(), ["ALL"], "{overlay}: every capability dropped");
    let probe = |p: &Option<k8s_openapi::api::core::v1::Probe>| p.clone().and_then(|p| p.http_get).and_then(|h| h.path);
    assert_eq!(probe(&c.liveness_probe).as_deref(), Some("/healthz"), "{overlay}");
    assert_eq!(probe(&c.readiness_probe).as_deref(), Some("/readyz"), "{overlay}");
    let resources = c.resources.clone().expect("resources");
    assert!(
        resources.requests.as_ref().is_some_and(|r| r.contains_key("memory") && r.contains_key("cpu")),
        "{overlay}: memory and cpu requests: {resources:?}"
    );
    let limit = resources.limits.and_then(|l| l.get("memory").map(|q| q.0.clone())).expect("a memory limit");
    assert_memory_headroom(&limit);
    let env = c.env.clone().unwrap_or_default();
    for (name, path) in [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")] {
        let field = env.iter().find(|e| e.name == name).and_then(|e| e.value_from.clone()).and_then(|v| v.field_ref).map(|f| f.field_path);
        assert_eq!(field.as_deref(), Some(path), "{name} from the downward API");
    }
    assert!(
        c.env_from.clone().unwrap_or_default().iter().any(|e| e.secret_ref.as_ref().is_some_and(|s| s.name == "dbintel-secrets")),
        "{overlay}: the secrets come from the dbintel-secrets Secret: {:?}",
        c.env_from
    );
    let manifest = format!("{:#?}", r.deployment);
    assert!(
        !manifest.to_lowercase().contains("password"),
        "no secret values in the manifests: {:?}",
        common::lines_with(&manifest.to_lowercase(), &["password"])
    );

    check_network(overlay, &r.policies, c);
    assert_eq!(
        r.service.spec.clone().and_then(|s| s.selector).unwrap_or_default().get("app.kubernetes.io/name").map(String::as_str),
        Some("dbintel"),
        "{overlay}: the Service selects the pods"
    );
    assert!(
        r.pdb.spec.clone().and_then(|s| s.selector).is_some(),
        "{overlay}: a PDB without a selector protects nothing: {:?}",
        r.pdb.spec
    );
    r
}

/// The Lease verbs engine/cluster calls: each `self.api.<method>(` of the
/// kube client in kube_api.rs, as RBAC names it. A new call the Role does
/// not grant (or a grant nothing calls) fails the deploy tests.
fn lease_verbs_the_code_calls() -> Vec<String> {
    let code = std::fs::read_to_string(common::root().join("engine/cluster/src/kube_api.rs")).expect("kube_api.rs");
    let mut verbs: Vec<String> = code
        .split("self.api.")
        .skip(1)
        .map(|rest| rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next().unwrap_or_default())
        .map(|method| {
            match method {
                "get" | "get_opt" => "get",
                "list" => "list",
                "create" => "create",
                "replace" => "update",
                "patch" => "patch",
                "delete" => "delete",
                "watch" => "watch",
                other => panic!("kube_api.rs calls Api::{other}: add its RBAC verb here"),
            }
            .to_string()
        })
        .collect();
    verbs.sort();
    verbs.dedup();
    assert!(verbs.len() >= 3, "found the calls in kube_api.rs: {verbs:?}");
    verbs
}

/// The network invariants: the admin endpoints on loopback only; in, the
/// metrics port only, and only from listed peers (the probes come from the
/// pod's node, which NetworkPolicy always lets through); out, DNS to
/// kube-dns and otherwise only to listed addresses, never to "anywhere".
fn check_network(overlay: &str, policies: &[NetworkPolicy], c: &k8s_openapi::api::core::v1::Container) {
    use k8s_openapi::api::networking::v1::NetworkPolicyPort;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let args = c.args.clone().unwrap_or_default();
    let admin = args.iter().position(|a| a == "--admin-listen").and_then(|i| args.get(i + 1)).cloned();
    let admin = admin.unwrap_or_else(|| panic!("{overlay}: /status and POST /reload on an admin listener: {args:?}"));
    assert!(admin.starts_with("127.0.0.1:"), "{overlay}: the admin listener is loopback only: {admin}");
    let admin_port: i32 = admin.rsplit(':').next().and_then(|p| p.parse().ok()).expect("the admin port");
    let container_ports: Vec<i32> = c.ports.clone().unwrap_or_default().iter().map(|p| p.container_port).collect();
    assert_eq!(container_ports, [9464], "{overlay}: the pod exposes the metrics port only");
    let listen = args.iter().position(|a| a == "--listen").and_then(|i| args.get(i + 1)).cloned().unwrap_or_default();
    assert!(listen.ends_with(":9464"), "{overlay}: --listen {listen}");
    for probe in [&c.liveness_probe, &c.readiness_probe] {
        let port = probe.clone().and_then(|p| p.http_get).map(|h| h.port);
        assert_eq!(port, Some(IntOrString::String("metrics".into())), "{overlay}: probes on the metrics port");
    }

    assert!(policies.len() >= 2, "{overlay}: the policy and the egress list: {}", policies.len());
    let ports = |ports: &[NetworkPolicyPort]| -> Vec<i32> {
        let mut p: Vec<i32> = ports
            .iter()
            .map(|p| match p.port {
                Some(IntOrString::Int(n)) => n,
                ref other => panic!("{overlay}: a numbered port, not {other:?}"),
            })
            .collect();
        p.sort_unstable();
        p.dedup();
        p
    };
    let (mut ingress_ports, mut egress_ports) = (Vec::new(), Vec::new());
    for policy in policies {
        let name = policy.metadata.name.clone().unwrap_or_default();
        let spec = policy.spec.clone().expect("policy spec");
        let selects = spec.pod_selector.as_ref().and_then(|s| s.match_labels.clone()).unwrap_or_default();
        assert_eq!(selects.get("app.kubernetes.io/name").map(String::as_str), Some("dbintel"), "{overlay}: {name} selects the pods");
        let types = spec.policy_types.clone().unwrap_or_default();
        for rule in spec.ingress.clone().unwrap_or_default() {
            assert!(types.iter().any(|t| t == "Ingress"), "{overlay}: {name}");
            let from = rule.from.clone().unwrap_or_default();
            assert!(!from.is_empty(), "{overlay}: {name} lets in only listed peers (a rule without `from` admits every pod)");
            let p = ports(&rule.ports.clone().unwrap_or_default());
            assert!(!p.is_empty(), "{overlay}: {name}: an ingress rule names its port");
            ingress_ports.extend(p);
        }
        for rule in spec.egress.clone().unwrap_or_default() {
            assert!(types.iter().any(|t| t == "Egress"), "{overlay}: {name}");
            let to = rule.to.clone().unwrap_or_default();
            assert!(!to.is_empty(), "{overlay}: {name}: an egress rule without `to` reaches every address");
            let p = ports(&rule.ports.clone().unwrap_or_default());
            assert!(!p.is_empty(), "{overlay}: {name}: an egress rule without ports reaches every port");
            for peer in &to {
                match (&peer.ip_block, &peer.pod_selector) {
                    (Some(block), None) => {
                        let prefix: u32 = block.cidr.rsplit('/').next().and_then(|n| n.parse().ok()).expect("a CIDR");
                        assert!(prefix > 0, "{overlay}: {name}: egress to anywhere ({})", block.cidr);
                        assert!(block.except.is_none(), "{overlay}: {name}: an ipBlock with exceptions is a wide one: {block:?}");
                    }
                    (None, Some(pods)) => {
                        let labels = pods.match_labels.clone().unwrap_or_default();
                        assert_eq!(labels.get("k8s-app").map(String::as_str), Some("kube-dns"), "{overlay}: {name}: pods other than DNS");
                        assert_eq!(p, [53], "{overlay}: {name}: DNS only to kube-dns");
                    }
                    other => panic!("{overlay}: {name}: egress to a peer that is neither an address block nor kube-dns: {other:?}"),
                }
            }
            egress_ports.extend(p);
        }
    }
    ingress_ports.sort_unstable();
    ingress_ports.dedup();
    egress_ports.sort_unstable();
    egress_ports.dedup();
    assert_eq!(ingress_ports, [9464], "{overlay}: in: the metrics port only");
    assert!(!ingress_ports.contains(&admin_port), "{overlay}: the admin port is never opened");
    assert_eq!(egress_ports, [53, 443, 3306, 4317, 4318, 5432, 6443], "{overlay}: out: DNS, the API, the databases, OTLP");
}

/// A Kubernetes memory quantity in bytes (`384Mi`, `1Gi`, `500M`).
fn quantity_bytes(q: &str) -> u64 {
    let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let (n, unit) = q.split_at(split);
    let n: u64 = n.parse().unwrap_or_else(|_| panic!("memory quantity `{q}`"));
    let factor = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "K" | "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => panic!("memory quantity `{q}`: unit {unit}"),
    };
    n * factor
}

/// What dbintel bounds itself to by default: the memory_limit node's budget
/// (at which it also refuses batches when RSS passes it) plus the New Relic
/// sink's send queue. The pod needs that and room for the runtime around
/// it, or the kernel kills it before the limiter acts.
fn assert_memory_headroom(pod_limit: &str) {
    use dbintel_dsl::schema::{sink_kind, DefaultValue, SettingSpec, MEMORY_LIMIT_SETTINGS};
    let size = |settings: &[SettingSpec], name: &str| {
        settings.iter().find(|s| s.name == name).and_then(|s| match s.default {
            DefaultValue::Size(n) => Some(n),
            _ => None,
        })
    };
    let budget = size(MEMORY_LIMIT_SETTINGS, "limit").expect("memory_limit's default limit");
    let queue = sink_kind("newrelic").and_then(|k| size(k.settings, "queue_size")).expect("newrelic's default queue_size");
    let runtime_room = 32 << 20;
    let limit = quantity_bytes(pod_limit);
    assert!(
        limit >= budget + queue + runtime_room,
        "the pod's memory limit {pod_limit} leaves no headroom above memory_limit ({} MiB) + the send queue ({} MiB) + {} MiB",
        budget >> 20,
        queue >> 20,
        runtime_room >> 20
    );
}

/// The ConfigMap's files, written out as the kubelet mounts them, must
/// validate; the shipped pipelines in it are pipelines/'s, byte for byte.
fn validate_config(config: &ConfigMap, name: &str) -> String {
    let dir = common::scratch(name);
    let data = config.data.clone().unwrap_or_default();
    for file in SHIPPED_PIPELINES {
        let shipped = std::fs::read_to_string(common::root().join("pipelines").join(file)).expect("a shipped pipeline");
        assert_eq!(data.get(*file), Some(&shipped), "{file} in the ConfigMap is pipelines/{file} (run deploy/sync-pipelines.sh)");
    }
    assert!(data.contains_key("cluster.pipe"), "cluster.pipe in the ConfigMap: {:?}", data.keys().collect::<Vec<_>>());
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
    assert_eq!(r.deployment.spec.replicas, Some(3), "the base runs three replicas");
    let cluster = validate_config(&r.config, "deploy-base");
    assert!(cluster.contains("mode = leader"), "the base elects a leader: {cluster}");
}

#[test]
fn the_new_relic_overlays_keep_the_invariants_and_pick_the_region() {
    for (overlay, endpoint) in [("overlays/newrelic-us", None), ("overlays/newrelic-eu", Some("https://otlp.eu01.nr-data.net:4318"))] {
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
    assert_eq!(r.deployment.spec.replicas, Some(1), "the dev overlay runs one replica");
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

/// Runs deploy/sync-pipelines.sh of the tree at `root`.
fn sync_pipelines(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(root.join("deploy/sync-pipelines.sh")).args(args).output().expect("deploy/sync-pipelines.sh")
}

/// Copies a directory tree (deploy/, pipelines/) into a scratch tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn the_deployed_pipelines_are_in_sync_with_pipelines() {
    let out = sync_pipelines(&common::root(), &["--check"]);
    assert_eq!(common::code(&out), 0, "{}", common::text(&out.stderr));
}

#[test]
fn sync_pipelines_check_names_a_stale_or_stray_copy_and_a_sync_repairs_it() {
    let root = common::scratch("deploy-sync");
    copy_tree(&common::root().join("deploy"), &root.join("deploy"));
    copy_tree(&common::root().join("pipelines"), &root.join("pipelines"));
    let fresh = sync_pipelines(&root, &["--check"]);
    assert_eq!(common::code(&fresh), 0, "a fresh copy is in sync: {}", common::seen(&fresh));

    let edited = root.join("pipelines/mysql.pipe");
    let text = std::fs::read_to_string(&edited).unwrap();
    std::fs::write(&edited, format!("{text}\n# a change\n")).unwrap();
    std::fs::write(root.join("deploy/base/pipelines/retired.pipe"), "# gone from pipelines/\n").unwrap();
    let out = sync_pipelines(&root, &["--check"]);
    let stderr = common::text(&out.stderr);
    assert_eq!(common::code(&out), 1, "{stderr}");
    assert!(stderr.contains("deploy/base/pipelines/mysql.pipe differs from pipelines/mysql.pipe"), "{stderr}");
    assert!(stderr.contains("retired.pipe is not one of the shipped pipelines"), "{stderr}");

    let out = sync_pipelines(&root, &[]);
    assert_eq!(common::code(&out), 0, "{}", common::text(&out.stderr));
    let again = sync_pipelines(&root, &["--check"]);
    assert_eq!(common::code(&again), 0, "in sync after the sync: {}", common::seen(&again));
    let copied = std::fs::read_to_string(root.join("deploy/base/pipelines/mysql.pipe")).unwrap_or_default();
    assert_eq!(copied, format!("{text}\n# a change\n"), "the changed pipeline was copied");
    assert!(!root.join("deploy/base/pipelines/retired.pipe").exists(), "the stray copy was removed");
}

/// `kubectl apply -k <repo>//deploy/overlays/newrelic-us`: kustomize clones
/// the repository and builds the overlay from the clone. Here the
/// repository is a local git repository holding deploy/ alone (so nothing
/// outside it can be read), named by a file:// URL, used as the base of an
/// overlay of a user's own that sets the image.
#[test]
fn the_overlays_work_as_a_remote_base_from_git() {
    let repo = common::scratch("deploy-remote-repo");
    copy_tree(&common::root().join("deploy"), &repo.join("deploy"));
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=dbintel-test", "-c", "user.email=test@dbintel.invalid", "-c", "init.defaultBranch=main"])
            .args(args)
            .current_dir(&repo)
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "deploy/"]);

    let mine = common::scratch("deploy-remote-user");
    std::fs::write(
        mine.join("kustomization.yaml"),
        format!(
            "resources:\n  - file://{}//deploy/overlays/newrelic-us?ref=main\nimages:\n  - name: dbintel\n    newName: registry.example/dbintel\n    newTag: 0.1.0\n",
            repo.display()
        ),
    )
    .unwrap();
    let remote = kustomize(mine.to_str().unwrap());
    let local = render("overlays/newrelic-us");
    let kinds = |docs: &[Value]| docs.iter().map(|d| format!("{} {}", d["kind"], d["metadata"]["name"])).collect::<Vec<_>>();
    assert_eq!(kinds(&remote), kinds(&local), "the remote base (left) renders the same objects as the local overlay (right)");
    let deployment = remote.iter().find(|d| d["kind"] == "Deployment").expect("a Deployment");
    let image = &deployment["spec"]["template"]["spec"]["containers"][0]["image"];
    assert_eq!(image, "registry.example/dbintel:0.1.0", "the user's overlay sets the image: {deployment}");

    let config = remote.iter().find(|d| d["kind"] == "ConfigMap").expect("the pipelines' ConfigMap");
    validate_config(&typed::<ConfigMap>(config), "deploy-remote");
}

/// The targets file example: a ConfigMap whose targets.yaml is a list in
/// the format of `targets = file(...)` (deploy/README.md), with no
/// password in it; the passwords in a Secret of placeholders.
#[test]
fn the_targets_example_is_a_list_of_targets_without_passwords() {
    let text = std::fs::read_to_string(common::root().join("deploy/targets.example.yaml")).unwrap();
    let docs = serde_saphyr::from_multiple::<Value>(&text).expect("YAML");
    let config: ConfigMap = typed(docs.iter().find(|d| d["kind"] == "ConfigMap").expect("a ConfigMap"));
    let secret: k8s_openapi::api::core::v1::Secret = typed(docs.iter().find(|d| d["kind"] == "Secret").expect("a Secret"));
    let secret_keys: Vec<String> = secret.string_data.clone().unwrap_or_default().into_keys().collect();
    for (key, value) in secret.string_data.unwrap_or_default() {
        assert_eq!(value, "CHANGE-ME", "{key} must be a placeholder");
    }

    let file = config.data.unwrap_or_default().get("targets.yaml").cloned().expect("targets.yaml in the ConfigMap");
    let targets: Vec<serde_json::Map<String, Value>> = serde_saphyr::from_str(&file).expect("a YAML list of targets");
    assert!(targets.len() >= 2, "an example of each way to give a DSN: {targets:?}");
    let parts = ["host", "port", "database", "user"];
    let overrides = ["interval", "timeout"];
    let mut names = Vec::new();
    for t in &targets {
        let name = t.get("name").and_then(Value::as_str).expect("every target has a name").to_string();
        for key in t.keys() {
            let known = ["name", "dsn", "password_file", "password_env", "attributes"].contains(&key.as_str())
                || parts.contains(&key.as_str())
                || overrides.contains(&key.as_str());
            assert!(known, "{name}: `{key}` is not in the targets format");
        }
        match t.get("dsn").and_then(Value::as_str) {
            Some(dsn) => {
                assert!(parts.iter().all(|p| !t.contains_key(*p)), "{name}: a dsn or its parts, not both");
                let authority = dsn.split_once("://").map(|(_, rest)| rest).unwrap_or(dsn);
                let userinfo = authority.split_once('@').map(|(u, _)| u).unwrap_or("");
                assert!(!userinfo.contains(':'), "{name}: a DSN never carries the password");
            }
            None => assert!(parts.iter().all(|p| t.contains_key(*p)), "{name}: host, port, database and user"),
        }
        let password = (t.get("password_file").and_then(Value::as_str), t.get("password_env").and_then(Value::as_str));
        match password {
            (Some(path), None) => {
                let key = path.rsplit('/').next().unwrap_or_default();
                assert!(secret_keys.iter().any(|k| k == key), "{name}: {path} is a key of the example Secret");
            }
            (None, Some(_)) => {}
            _ => panic!("{name}: the password from password_file or password_env, one of them"),
        }
        if let Some(attributes) = t.get("attributes") {
            assert!(attributes.as_object().is_some_and(|a| a.values().all(Value::is_string)), "{name}: attributes map names to strings");
        }
        assert!(!names.contains(&name), "{name} twice");
        names.push(name);
    }
}

/// The image ships the stripped build: the Dockerfile builds and copies the
/// `dist` profile, and Cargo.toml's `dist` is the release profile without
/// debug info or symbols (BENCHMARKS.md has the size).
#[test]
fn the_dockerfile_builds_the_stripped_dist_profile() {
    let dockerfile = std::fs::read_to_string(common::root().join("deploy/Dockerfile")).unwrap();
    let build = dockerfile.lines().find(|l| l.contains("cargo build")).expect("a cargo build step");
    assert!(build.contains("--profile dist") && build.contains("--locked"), "{build}");
    assert!(
        dockerfile.contains("COPY --from=build /src/target/dist/dbintel "),
        "the image takes the dist binary: {:?}",
        common::lines_with(&dockerfile, &["COPY"])
    );

    let manifest = std::fs::read_to_string(common::root().join("Cargo.toml")).unwrap();
    let section: Vec<&str> = manifest
        .split("\n[")
        .find(|s| s.starts_with("profile.dist]"))
        .expect("a [profile.dist] in Cargo.toml")
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    for setting in ["inherits = \"release\"", "debug = false", "strip = true"] {
        assert!(section.contains(&setting), "[profile.dist] has {setting}: {section:?}");
    }
}
