//! The real Lease endpoints, through kube. Configuration is inferred:
//! in a pod, the service account; elsewhere, `KUBECONFIG`.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{ListParams, PostParams};

use super::lease::{ApiError, LeaseApi, LeaseRecord};
use dbintel_core::BoxFuture;

pub struct KubeLeases {
    api: kube::Api<Lease>,
}

impl KubeLeases {
    pub async fn connect(namespace: Option<&str>) -> Result<(KubeLeases, String), String> {
        let config = kube::Config::infer().await.map_err(|e| format!("no Kubernetes configuration (in-cluster or KUBECONFIG): {e}"))?;
        let namespace = namespace.map(str::to_string).unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config).map_err(|e| format!("Kubernetes client: {e}"))?;
        Ok((KubeLeases { api: kube::Api::namespaced(client, &namespace) }, namespace))
    }
}

fn error(e: kube::Error) -> ApiError {
    match e {
        kube::Error::Api(status) if status.is_conflict() || status.is_already_exists() => ApiError::Conflict,
        other => ApiError::Other(other.to_string()),
    }
}

fn micro(t: &Option<String>) -> Option<MicroTime> {
    t.as_deref().and_then(|s| s.parse().ok()).map(MicroTime)
}

fn to_lease(name: &str, r: &LeaseRecord) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            resource_version: (!r.resource_version.is_empty()).then(|| r.resource_version.clone()),
            labels: Some([("app.kubernetes.io/name".to_string(), "dbintel".to_string())].into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: r.holder.clone(),
            lease_duration_seconds: Some(r.duration_secs),
            acquire_time: micro(&r.acquire_time),
            renew_time: micro(&r.renew_time),
            lease_transitions: Some(r.transitions),
            ..LeaseSpec::default()
        }),
    }
}

fn from_lease(l: &Lease) -> LeaseRecord {
    let spec = l.spec.clone().unwrap_or_default();
    let time = |t: Option<MicroTime>| t.map(|t| t.0.to_string());
    LeaseRecord {
        holder: spec.holder_identity,
        duration_secs: spec.lease_duration_seconds.unwrap_or(15),
        acquire_time: time(spec.acquire_time),
        renew_time: time(spec.renew_time),
        transitions: spec.lease_transitions.unwrap_or(0),
        resource_version: l.metadata.resource_version.clone().unwrap_or_default(),
    }
}

impl LeaseApi for KubeLeases {
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<LeaseRecord>, ApiError>> {
        Box::pin(async move { self.api.get_opt(name).await.map(|l| l.as_ref().map(from_lease)).map_err(error) })
    }
    fn create<'a>(&'a self, name: &'a str, record: LeaseRecord) -> BoxFuture<'a, Result<LeaseRecord, ApiError>> {
        Box::pin(
            async move { self.api.create(&PostParams::default(), &to_lease(name, &record)).await.map(|l| from_lease(&l)).map_err(error) },
        )
    }
    fn replace<'a>(&'a self, name: &'a str, record: LeaseRecord) -> BoxFuture<'a, Result<LeaseRecord, ApiError>> {
        Box::pin(async move {
            self.api.replace(name, &PostParams::default(), &to_lease(name, &record)).await.map(|l| from_lease(&l)).map_err(error)
        })
    }
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<(String, LeaseRecord)>, ApiError>> {
        Box::pin(async move {
            let leases = self.api.list(&ListParams::default().labels("app.kubernetes.io/name=dbintel")).await.map_err(error)?;
            Ok(leases
                .items
                .iter()
                .filter_map(|l| l.metadata.name.clone().filter(|n| n.starts_with(prefix)).map(|n| (n, from_lease(l))))
                .collect())
        })
    }
}
