//! What can go wrong in `kubectl strata`, each error saying what to do about it.

/// What went wrong; each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot run {program}: {source} (is kubectl on PATH? KUBECTL names another program)")]
    NoKubectl { program: String, source: std::io::Error },
    #[error("cannot reach the cluster: {message}")]
    NoCluster { message: String },
    #[error(
        "no kubeconfig found: no --kubeconfig was given, {env}, and {home} does not exist, so kubectl tried \
         localhost:8080; point --kubeconfig or KUBECONFIG at your cluster's kubeconfig"
    )]
    NoKubeconfig { env: String, home: String },
    #[error("no permission: {message}")]
    Forbidden { message: String },
    #[error("the cluster has no {resource} (is the CRD installed?): {message}")]
    NoResource { resource: String, message: String },
    #[error("not found: {message}")]
    NotFound { message: String },
    #[error("kubectl {args} failed: {message}")]
    Kubectl { args: String, message: String },
    #[error("kubectl {args} printed something that is not JSON: {reason}")]
    BadJson { args: String, reason: String },
    #[error("{0:?} is not a PV: use pv/NAME")]
    NotPv(String),
    #[error("{0}")]
    Migrate(#[from] crate::migrate::Error),
    #[error(
        "PV {name} is {what}; --apply replaces only a PV whose reclaim policy is Retain and whose claim is \
         deleted (phase Released or Available): see docs/flexvolume-to-csi.md"
    )]
    NotReplaceable { name: String, what: String },
    #[error(
        "the FlexVolume PV {name} was deleted but applying its CSI PV failed ({source}); apply the PV printed above"
    )]
    HalfApplied { name: String, source: Box<Error> },
    #[error("encoding the output: {0}")]
    Encode(String),
}
