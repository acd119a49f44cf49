//! Clients of the services a node bridges the mesh to: an OpenAI-compatible inference server
//! (LocalAI, llama.cpp, a cloud provider) and an IPFS node speaking the Kubo RPC API. They know
//! nothing of the mesh; the services above (`inference`, `artifacts`) and the node's probe use them.
pub mod kubo;
pub mod localai;
