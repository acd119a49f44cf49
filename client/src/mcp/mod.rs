//! The MCP server: the spec's tools for AI agents, over stdio (`ripple mcp`) and streamable
//! HTTP (`ripple up --mcp-http ADDR`, at `/mcp`). The tool list comes from
//! `manifests/cloud/mcp_tools.json`; every call is validated against its input schema before it
//! runs, and every result against its output schema before it is sent.
mod artifact_tools;
#[cfg(test)]
mod catalog_bounds;
mod holochain_tools;
mod inference_tools;
mod memory_tools;
mod policy_tools;
mod resource_tools;
pub mod schema;

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
    ToolsCapability,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use serde_json::Value;

use crate::runtime::Runtime;
use schema::ToolSpec;

/// The catalog, compiled in: the tools are part of this binary's interface, not a runtime setting.
pub const CATALOG: &str = include_str!("../../../manifests/cloud/mcp_tools.json");

/// Largest `arguments` object a call may carry (stdio has no HTTP body limit).
const MAX_ARGUMENTS_BYTES: usize = 256 * 1024;

/// How tool names are served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ToolNames {
    /// The spec's names: `holochain.join_mesh`.
    #[default]
    Dotted,
    /// For clients that accept only `[a-zA-Z0-9_-]`: `holochain_join_mesh`.
    Underscore,
}

impl ToolNames {
    fn serve(self, name: &str) -> String {
        match self {
            ToolNames::Dotted => name.into(),
            ToolNames::Underscore => name.replace('.', "_"),
        }
    }
}

/// Every tool this server implements, in catalog order.
fn implemented() -> Vec<&'static str> {
    [
        holochain_tools::NAMES,
        resource_tools::NAMES,
        artifact_tools::NAMES,
        policy_tools::NAMES,
        memory_tools::NAMES,
        inference_tools::NAMES,
    ]
    .concat()
}

/// The catalog's tools that this server implements, each with its served name.
pub struct Catalog {
    /// Served name, the spec, and the `Tool` as listed (built once: HTTP looks it up per request).
    tools: Vec<(String, ToolSpec, Tool)>,
}

impl Catalog {
    /// Loads the compiled-in catalog and checks that it and the implemented tools agree.
    pub fn load(names: ToolNames) -> Result<Self, String> {
        let specs = schema::load_catalog(CATALOG).map_err(|e| format!("manifests/cloud/mcp_tools.json: {e}"))?;
        let listed: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        let implemented = implemented();
        let missing: Vec<&&str> = implemented.iter().filter(|n| !listed.contains(n)).collect();
        let unimplemented: Vec<&&str> = listed.iter().filter(|n| !implemented.contains(n)).collect();
        if !missing.is_empty() || !unimplemented.is_empty() {
            return Err(format!(
                "manifests/cloud/mcp_tools.json and the server disagree: implemented but not in the file {missing:?}, \
                 in the file but not implemented {unimplemented:?}"
            ));
        }
        Ok(Self {
            tools: specs
                .into_iter()
                .map(|spec| {
                    let served = names.serve(&spec.name);
                    let tool = listed_tool(&served, &spec);
                    (served, spec, tool)
                })
                .collect(),
        })
    }

    fn find(&self, served: &str) -> Option<&ToolSpec> {
        self.tools.iter().find(|(name, _, _)| name == served).map(|(_, spec, _)| spec)
    }

    fn tool(&self, served: &str) -> Option<Tool> {
        self.tools.iter().find(|(name, _, _)| name == served).map(|(_, _, tool)| tool.clone())
    }

    pub fn served_names(&self) -> Vec<String> {
        self.tools.iter().map(|(name, _, _)| name.clone()).collect()
    }
}

fn listed_tool(served: &str, spec: &ToolSpec) -> Tool {
    let mut annotations = ToolAnnotations::new()
        .read_only(spec.read_only)
        .destructive(spec.destructive)
        .idempotent(spec.idempotent)
        .open_world(false);
    annotations.title = spec.title.clone();
    let mut tool = Tool::new(served.to_string(), spec.description.clone(), Arc::new(spec.input_schema.clone()))
        .with_raw_output_schema(Arc::new(spec.output_schema.clone()))
        .with_annotations(annotations);
    if let Some(title) = &spec.title {
        tool = tool.with_title(title.clone());
    }
    tool
}

/// One MCP server over one node runtime. Cheap to clone: HTTP makes one per session.
#[derive(Clone)]
pub struct McpServer {
    runtime: Arc<Runtime>,
    catalog: Arc<Catalog>,
}

impl McpServer {
    pub fn new(runtime: Arc<Runtime>, names: ToolNames) -> Result<Self, String> {
        Ok(Self { runtime, catalog: Arc::new(Catalog::load(names)?) })
    }

    /// Validates, runs and checks one call. Bad input and failures are tool errors (which the
    /// agent reads), never protocol errors.
    async fn call(&self, request: CallToolRequestParams, context: &RequestContext<RoleServer>) -> CallToolResult {
        let Some(spec) = self.catalog.find(&request.name) else {
            return tool_error(format!(
                "unknown tool `{}`; this server has {}",
                request.name,
                self.catalog.served_names().join(", ")
            ));
        };
        let started = std::time::Instant::now();
        let result = self.run(spec, request, context).await;
        let ok = !result.is_error.unwrap_or(false);
        self.runtime.metrics().observe_mcp_call(&spec.name, started.elapsed(), ok);
        result
    }

    async fn run(
        &self,
        spec: &ToolSpec,
        request: CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let size = arguments.to_string().len();
        if size > MAX_ARGUMENTS_BYTES {
            return tool_error(format!("arguments are {size} bytes; the limit is {MAX_ARGUMENTS_BYTES}"));
        }
        let errors = schema::validate(&spec.input_schema, &arguments);
        if !errors.is_empty() {
            return tool_error(format!("invalid arguments for {}: {}", request.name, errors.join("; ")));
        }
        let progress = Progress::start(context);
        let send = |line: &str| progress.send(line);
        let result = match spec.name.split_once('.').map(|(group, _)| group) {
            Some("holochain") => holochain_tools::call(&self.runtime, &spec.name, arguments, &send).await,
            // Every other group works on a joined node: join the configured network first if needed.
            group => match holochain_tools::joined(&self.runtime, &send).await {
                Err(e) => Err(e),
                Ok(joined) => {
                    let state = &joined.services;
                    match group {
                        Some("resources") => resource_tools::call(state, &spec.name, arguments, &send).await,
                        Some("artifacts") => artifact_tools::call(state, &spec.name, arguments, &send).await,
                        Some("policy") => policy_tools::call(state, &spec.name, arguments, &send).await,
                        Some("memory") => memory_tools::call(state, &spec.name, arguments, &send).await,
                        Some("inference") => inference_tools::call(state, &spec.name, arguments, &send).await,
                        _ => Err(format!("tool `{}` is in the catalog but not implemented", spec.name)),
                    }
                }
            },
        };
        progress.finish().await;
        match result {
            Ok(output) => {
                let errors = schema::validate(&spec.output_schema, &output);
                if errors.is_empty() {
                    CallToolResult::structured(output)
                } else {
                    tracing::error!("{} produced output outside its schema: {errors:?}", spec.name);
                    tool_error(format!(
                        "internal error: the result does not match the tool's output schema: {}",
                        errors.join("; ")
                    ))
                }
            }
            Err(message) => tool_error(message),
        }
    }
}

fn tool_error(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        let mut capabilities = ServerCapabilities::default();
        capabilities.tools = Some(ToolsCapability::default());
        let mut info = ServerConfig::new(capabilities).with_instructions(
            "Ripple mesh node tools. Call holochain.join_mesh (or holochain.init_conductor first) to bring this \
             node onto a network; holochain.query_peers finds other nodes by capability.",
        );
        info.server_info = Implementation::new("ripple", env!("CARGO_PKG_VERSION"));
        info
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let tools = self.catalog.tools.iter().map(|(_, _, tool)| tool.clone()).collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.catalog.tool(name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        Ok(self.call(request, &context).await.into())
    }
}

/// Progress notifications for a call whose client sent a progress token, forwarded in order;
/// every line also goes to the log.
struct Progress {
    sender: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    forwarder: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    fn start(context: &RequestContext<RoleServer>) -> Self {
        let Some(token) = context.meta.get_progress_token() else {
            return Self { sender: None, forwarder: None };
        };
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<String>();
        let peer = context.peer.clone();
        let forwarder = tokio::spawn(async move {
            let mut step = 0.0;
            while let Some(message) = receiver.recv().await {
                step += 1.0;
                let note = ProgressNotificationParam::new(token.clone(), step).with_message(message);
                if let Err(e) = peer.notify_progress(note).await {
                    tracing::debug!("progress notification not delivered: {e}");
                }
            }
        });
        Self { sender: Some(sender), forwarder: Some(forwarder) }
    }

    fn send(&self, line: &str) {
        tracing::info!("{line}");
        if let Some(sender) = &self.sender {
            let _ = sender.send(line.to_string());
        }
    }

    /// Delivers what is queued before the result goes out.
    async fn finish(mut self) {
        self.sender = None;
        if let Some(forwarder) = self.forwarder.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), forwarder).await;
        }
    }
}

/// Serves MCP over stdin/stdout until the client closes stdin or a signal arrives, then shuts
/// the node down (offline advert, conductor stopped).
pub async fn serve_stdio(runtime: Arc<Runtime>, names: ToolNames) -> anyhow::Result<()> {
    let server = McpServer::new(runtime.clone(), names).map_err(anyhow::Error::msg)?;
    let mut signals = crate::runtime::signals::Signals::register()?;
    let running = server.serve(rmcp::transport::stdio()).await?;
    let cancel = running.cancellation_token();
    tokio::select! {
        quit = running.waiting() => { quit?; }
        _ = signals.recv() => cancel.cancel(),
    }
    runtime.shutdown(&|line| tracing::info!("{line}")).await;
    Ok(())
}

/// Serves MCP over streamable HTTP at `/mcp` on `listener` (loopback); returns the endpoint URL
/// and the token that stops it.
pub fn serve_http(
    runtime: Arc<Runtime>,
    names: ToolNames,
    listener: tokio::net::TcpListener,
) -> std::io::Result<(String, tokio_util::sync::CancellationToken)> {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

    let server = McpServer::new(runtime, names).map_err(std::io::Error::other)?;
    let addr = listener.local_addr()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let config = StreamableHttpServerConfig::default()
        .with_cancellation_token(stop.child_token())
        .with_allowed_hosts(["localhost".to_string(), "127.0.0.1".into(), "::1".into(), addr.to_string()]);
    let service =
        StreamableHttpService::new(move || Ok(server.clone()), Arc::new(LocalSessionManager::default()), config);
    let router = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn(crate::local_http::only_this_machine));
    let shutdown = stop.clone();
    // Responses stream as SSE in several writes; without TCP_NODELAY each call can wait out the
    // client's delayed ACK (40 ms).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        let served = axum::serve(listener, router).with_graceful_shutdown(async move { shutdown.cancelled().await });
        if let Err(e) = served.await {
            tracing::error!("MCP HTTP server stopped: {e}");
        }
    });
    Ok((format!("http://{addr}/mcp"), stop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_and_the_implemented_tools_agree() {
        let catalog = Catalog::load(ToolNames::Dotted).expect("catalog matches the implementation");
        assert_eq!(catalog.served_names(), implemented().iter().map(|n| n.to_string()).collect::<Vec<_>>());
        let underscore = Catalog::load(ToolNames::Underscore).unwrap();
        assert!(underscore.served_names().contains(&"holochain_join_mesh".to_string()));
        let valid = regex::Regex::new("^[a-zA-Z0-9_-]+$").unwrap();
        assert!(underscore.served_names().iter().all(|n| valid.is_match(n)));
        let tool = underscore.tool("holochain_query_peers").unwrap();
        assert_eq!(tool.annotations.and_then(|a| a.read_only_hint), Some(true));
    }
}
