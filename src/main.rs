//! The `ferry` server binary: parse the configuration, build the state
//! (`server::bootstrap`), serve the router until Ctrl-C or SIGTERM.

use clap::Parser;
use ferry::router;
use ferry::server::bootstrap;
use ferry::server::config::Config;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    let filter = match EnvFilter::try_new(&config.log) {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("error: invalid value {:?} for '--log': {e}", config.log);
            return std::process::ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt().with_env_filter(filter).init();
    match serve(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let addr = config.addr;
    let data_dir = config.data_dir.clone();
    let sweep_every = config.sweep_every;
    let state = bootstrap::state(config)
        .await
        .map_err(|e| format!("cannot open the data folder {}: {e}", data_dir.display()))?;
    state.uploads.spawn_sweeper(sweep_every);
    state.uploads.hooks().spawn_delivery();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tracing::info!(
        "Ferry {} listening on http://{} with data in {}",
        ferry::VERSION,
        listener.local_addr()?,
        data_dir.display()
    );
    let options = ferry::http::ServeOptions {
        header_timeout: state.config.header_timeout,
        max_header_bytes: usize::try_from(state.config.max_header_bytes).unwrap_or(usize::MAX),
        read_buffer: usize::try_from(state.config.read_buffer).unwrap_or(usize::MAX),
        body_timeout: state.config.body_timeout,
        max_connections: state.config.max_connections as usize,
        metrics: Some(state.metrics.clone()),
    };
    if let Some(addr) = state.config.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} for metrics: {e}"))?;
        tracing::info!("metrics on http://{addr}/metrics");
        tokio::spawn(ferry::http::metrics::serve_alone(
            listener,
            state.metrics.clone(),
        ));
    }
    ferry::http::serve(listener, router(state), options, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
