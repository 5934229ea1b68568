//! The container runtime behind a trait: [`Runtime`] is what the pod workers need of
//! CRI, [`CriRuntime`] speaks CRI v1 gRPC to containerd over its unix socket, and the
//! unit tests of the pod logic use a fake.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to the container runtime at {socket}: {message}")]
    Connect { socket: PathBuf, message: String },
    #[error("runtime call {call} failed: {status}")]
    Call { call: &'static str, status: Box<tonic::Status> },
    #[error("runtime call {call} answered without {what}")]
    Empty { call: &'static str, what: &'static str },
}

impl Error {
    /// The runtime says the object does not exist (already removed, or never was).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Call { status, .. } if status.code() == tonic::Code::NotFound)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// The CRI calls the kubelet makes, with CRI's own message types.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// `containerd://1.6.20`-style name and version.
    async fn version(&self) -> Result<String>;
    async fn run_pod_sandbox(&self, config: cri::PodSandboxConfig) -> Result<String>;
    async fn stop_pod_sandbox(&self, id: &str) -> Result<()>;
    async fn remove_pod_sandbox(&self, id: &str) -> Result<()>;
    /// The sandbox's pod IP (empty for host-network pods) and state.
    async fn pod_sandbox_status(&self, id: &str) -> Result<cri::PodSandboxStatus>;
    /// Sandboxes, all or those of one pod (by its uid label).
    async fn list_pod_sandboxes(&self, pod_uid: Option<&str>) -> Result<Vec<cri::PodSandbox>>;
    async fn create_container(
        &self,
        sandbox_id: &str,
        config: cri::ContainerConfig,
        sandbox: cri::PodSandboxConfig,
    ) -> Result<String>;
    async fn start_container(&self, id: &str) -> Result<()>;
    async fn stop_container(&self, id: &str, timeout_seconds: i64) -> Result<()>;
    async fn remove_container(&self, id: &str) -> Result<()>;
    /// Containers, all or those of one pod (by its uid label).
    async fn list_containers(&self, pod_uid: Option<&str>) -> Result<Vec<cri::Container>>;
    async fn container_status(&self, id: &str) -> Result<cri::ContainerStatus>;
    /// The image's id when the runtime has it.
    async fn image_id(&self, image: &str) -> Result<Option<String>>;
    /// Pulls the image and returns its reference.
    async fn pull_image(&self, image: &str, sandbox: Option<cri::PodSandboxConfig>) -> Result<String>;
    /// Pulls with credentials from the pod's image pull secrets (they replace those the
    /// runtime has for the registry); runtimes without credentials ignore them.
    async fn pull_image_with_auth(
        &self,
        image: &str,
        auth: Option<cri::AuthConfig>,
        sandbox: Option<cri::PodSandboxConfig>,
    ) -> Result<String> {
        let _ = auth;
        self.pull_image(image, sandbox).await
    }
    /// Runs `cmd` in the container and waits for it, at most `timeout` (the runtime
    /// ends it then): its exit code and output. Exec probes use it.
    async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: std::time::Duration,
    ) -> Result<cri::ExecSyncResponse>;
}

/// CRI v1 over a unix socket.
#[derive(Clone)]
pub struct CriRuntime {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

impl CriRuntime {
    /// Connects lazily: the channel reconnects by itself after a runtime restart.
    pub fn connect(socket: &Path) -> Result<CriRuntime> {
        let path = socket.to_path_buf();
        let endpoint = Endpoint::try_from("http://[::]:50051")
            .map_err(|e| Error::Connect { socket: path.clone(), message: e.to_string() })?;
        let channel = endpoint.connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
        }));
        Ok(CriRuntime {
            runtime: RuntimeServiceClient::new(channel.clone()).max_decoding_message_size(64 << 20),
            images: ImageServiceClient::new(channel).max_decoding_message_size(64 << 20),
        })
    }
}

fn uid_selector(uid: &str) -> std::collections::HashMap<String, String> {
    std::collections::HashMap::from([(crate::pod::spec::LABEL_POD_UID.to_string(), uid.to_string())])
}

fn call(name: &'static str) -> impl FnOnce(tonic::Status) -> Error {
    move |status| Error::Call { call: name, status: Box::new(status) }
}

#[async_trait]
impl Runtime for CriRuntime {
    async fn version(&self) -> Result<String> {
        let v = self
            .runtime
            .clone()
            .version(cri::VersionRequest { version: "v1".into() })
            .await
            .map_err(call("Version"))?
            .into_inner();
        Ok(format!("{}://{}", v.runtime_name, v.runtime_version))
    }

    async fn run_pod_sandbox(&self, config: cri::PodSandboxConfig) -> Result<String> {
        let r = self
            .runtime
            .clone()
            .run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(config), runtime_handler: String::new() })
            .await
            .map_err(call("RunPodSandbox"))?;
        Ok(r.into_inner().pod_sandbox_id)
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        self.runtime
            .clone()
            .stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: id.into() })
            .await
            .map_err(call("StopPodSandbox"))?;
        Ok(())
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        self.runtime
            .clone()
            .remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id.into() })
            .await
            .map_err(call("RemovePodSandbox"))?;
        Ok(())
    }

    async fn pod_sandbox_status(&self, id: &str) -> Result<cri::PodSandboxStatus> {
        self.runtime
            .clone()
            .pod_sandbox_status(cri::PodSandboxStatusRequest { pod_sandbox_id: id.into(), verbose: false })
            .await
            .map_err(call("PodSandboxStatus"))?
            .into_inner()
            .status
            .ok_or(Error::Empty { call: "PodSandboxStatus", what: "a status" })
    }

    async fn list_pod_sandboxes(&self, pod_uid: Option<&str>) -> Result<Vec<cri::PodSandbox>> {
        let filter =
            pod_uid.map(|uid| cri::PodSandboxFilter { label_selector: uid_selector(uid), ..Default::default() });
        Ok(self
            .runtime
            .clone()
            .list_pod_sandbox(cri::ListPodSandboxRequest { filter })
            .await
            .map_err(call("ListPodSandbox"))?
            .into_inner()
            .items)
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: cri::ContainerConfig,
        sandbox: cri::PodSandboxConfig,
    ) -> Result<String> {
        let r = self
            .runtime
            .clone()
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: sandbox_id.into(),
                config: Some(config),
                sandbox_config: Some(sandbox),
            })
            .await
            .map_err(call("CreateContainer"))?;
        Ok(r.into_inner().container_id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.runtime
            .clone()
            .start_container(cri::StartContainerRequest { container_id: id.into() })
            .await
            .map_err(call("StartContainer"))?;
        Ok(())
    }

    async fn stop_container(&self, id: &str, timeout_seconds: i64) -> Result<()> {
        self.runtime
            .clone()
            .stop_container(cri::StopContainerRequest { container_id: id.into(), timeout: timeout_seconds })
            .await
            .map_err(call("StopContainer"))?;
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        self.runtime
            .clone()
            .remove_container(cri::RemoveContainerRequest { container_id: id.into() })
            .await
            .map_err(call("RemoveContainer"))?;
        Ok(())
    }

    async fn list_containers(&self, pod_uid: Option<&str>) -> Result<Vec<cri::Container>> {
        let filter =
            pod_uid.map(|uid| cri::ContainerFilter { label_selector: uid_selector(uid), ..Default::default() });
        Ok(self
            .runtime
            .clone()
            .list_containers(cri::ListContainersRequest { filter })
            .await
            .map_err(call("ListContainers"))?
            .into_inner()
            .containers)
    }

    async fn container_status(&self, id: &str) -> Result<cri::ContainerStatus> {
        self.runtime
            .clone()
            .container_status(cri::ContainerStatusRequest { container_id: id.into(), verbose: false })
            .await
            .map_err(call("ContainerStatus"))?
            .into_inner()
            .status
            .ok_or(Error::Empty { call: "ContainerStatus", what: "a status" })
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>> {
        let r = self
            .images
            .clone()
            .image_status(cri::ImageStatusRequest {
                image: Some(cri::ImageSpec { image: image.into(), ..Default::default() }),
                verbose: false,
            })
            .await
            .map_err(call("ImageStatus"))?;
        Ok(r.into_inner().image.map(|i| i.id))
    }

    async fn pull_image(&self, image: &str, sandbox: Option<cri::PodSandboxConfig>) -> Result<String> {
        self.pull_image_with_auth(image, None, sandbox).await
    }

    async fn pull_image_with_auth(
        &self,
        image: &str,
        auth: Option<cri::AuthConfig>,
        sandbox: Option<cri::PodSandboxConfig>,
    ) -> Result<String> {
        let r = self
            .images
            .clone()
            .pull_image(cri::PullImageRequest {
                image: Some(cri::ImageSpec { image: image.into(), ..Default::default() }),
                auth,
                sandbox_config: sandbox,
            })
            .await
            .map_err(call("PullImage"))?;
        Ok(r.into_inner().image_ref)
    }

    async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: std::time::Duration,
    ) -> Result<cri::ExecSyncResponse> {
        // The runtime counts whole seconds; the gRPC deadline a little later covers a
        // runtime that does not answer at all.
        let mut req = tonic::Request::new(cri::ExecSyncRequest {
            container_id: id.into(),
            cmd,
            timeout: timeout.as_secs().max(1) as i64,
        });
        req.set_timeout(timeout + std::time::Duration::from_secs(2));
        Ok(self.runtime.clone().exec_sync(req).await.map_err(call("ExecSync"))?.into_inner())
    }
}

/// The CRI calls behind `kubectl exec/attach/port-forward`: each returns the URL of the
/// runtime's streaming server that carries the session.
#[async_trait]
pub trait Streaming: Send + Sync + 'static {
    async fn exec(&self, request: cri::ExecRequest) -> Result<String>;
    async fn attach(&self, request: cri::AttachRequest) -> Result<String>;
    async fn port_forward(&self, sandbox_id: &str) -> Result<String>;
    /// Resource usage of every container (for `/stats/summary`).
    async fn container_stats(&self) -> Result<Vec<cri::ContainerStats>>;
}

#[async_trait]
impl Streaming for CriRuntime {
    async fn exec(&self, request: cri::ExecRequest) -> Result<String> {
        Ok(self.runtime.clone().exec(request).await.map_err(call("Exec"))?.into_inner().url)
    }

    async fn attach(&self, request: cri::AttachRequest) -> Result<String> {
        Ok(self.runtime.clone().attach(request).await.map_err(call("Attach"))?.into_inner().url)
    }

    async fn port_forward(&self, sandbox_id: &str) -> Result<String> {
        let request = cri::PortForwardRequest { pod_sandbox_id: sandbox_id.into(), port: Vec::new() };
        Ok(self.runtime.clone().port_forward(request).await.map_err(call("PortForward"))?.into_inner().url)
    }

    async fn container_stats(&self) -> Result<Vec<cri::ContainerStats>> {
        let request = cri::ListContainerStatsRequest { filter: None };
        Ok(self
            .runtime
            .clone()
            .list_container_stats(request)
            .await
            .map_err(call("ListContainerStats"))?
            .into_inner()
            .stats)
    }
}
