//! The command-line face of the remote signer: `sign` flattens these options into its own, and
//! they become a `verity_service::RemoteSigner`.
use std::path::PathBuf;

use anyhow::bail;
use verity_service::{ClientError, Credentials, EventSink, RemoteSignerOptions, SignerEvent};

/// The options `sign` flattens into its own to sign through a service instead of a local key.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RemoteSignerArgs {
    /// Sign through `rpm-verity serve` at this URL (https://HOST:PORT) instead of a local key.
    /// Repeat it (or give a comma-separated list) for replicas: a request that meets a
    /// connection failure, timeout or 5xx answer goes to the next one.
    #[arg(long, value_name = "URL", value_delimiter = ',')]
    pub signer: Vec<String>,
    /// Name of the key on the signing service.
    #[arg(long, value_name = "NAME", requires = "signer")]
    pub key_name: Option<String>,
    /// Client certificate (PEM, may include its chain) for mutual TLS.
    #[arg(
        long,
        value_name = "FILE",
        requires = "client_key",
        requires = "signer"
    )]
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM) of --client-cert.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// File holding a bearer token for the signing service.
    #[arg(long, value_name = "FILE", requires = "signer")]
    pub token_file: Option<PathBuf>,
    /// CA certificate(s) (PEM) that issued the service's certificate [default: the system's].
    #[arg(long, value_name = "FILE", requires = "signer")]
    pub ca: Option<PathBuf>,
}

impl RemoteSignerArgs {
    /// Whether a remote signer was asked for (`--signer` given).
    pub fn is_remote(&self) -> bool {
        !self.signer.is_empty()
    }

    /// Connects to the service named by the options, naming the option to fix when the problem
    /// is in one. `verbose`: say on stderr which signer answers and which fail.
    pub fn connect(&self, verbose: bool) -> anyhow::Result<verity_service::RemoteSigner> {
        let args = self;
        let (false, Some(key_name)) = (args.signer.is_empty(), &args.key_name) else {
            bail!("--signer URL and --key-name NAME are required for remote signing");
        };
        let mut options = RemoteSignerOptions::new(&args.signer[0], key_name);
        options.urls = args.signer.clone();
        options.ca = args.ca.clone();
        if verbose {
            options.events = Some(EventSink(std::sync::Arc::new(report_event)));
        }
        options.credentials = match (&args.token_file, &args.client_cert, &args.client_key) {
            (Some(_), Some(_), _) => {
                bail!("give either --token-file or --client-cert/--client-key, not both")
            }
            (Some(t), None, _) => Credentials::TokenFile(t.clone()),
            (None, Some(cert), Some(key)) => Credentials::ClientCert {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => Credentials::None,
        };
        verity_service::RemoteSigner::connect(&options).map_err(|e| {
            let option = match &e {
                ClientError::NotHttps { .. } => "--signer",
                ClientError::BadKeyName { .. } => "--key-name",
                ClientError::Roots { .. } => "--ca",
                ClientError::ClientCert(_) => "--client-cert/--client-key",
                ClientError::Read { .. } | ClientError::EmptyToken { .. } => "--token-file",
                _ => return anyhow::Error::new(e),
            };
            anyhow::Error::new(e).context(option)
        })
    }
}

fn report_event(e: &SignerEvent<'_>) {
    match e {
        SignerEvent::Using { url } => eprintln!("rpm-verity: signing through {url}"),
        SignerEvent::Failed { url, error, next } => eprintln!(
            "rpm-verity: signer {url} failed ({}){}",
            crate::render::escape(&chain(error)),
            next.map(|n| format!("; trying {n}")).unwrap_or_default()
        ),
    }
}

/// An error and its causes, `: `-separated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
