//! Native unit tests of the pure rules (no conductor).
mod heartbeat;
mod index;
mod node_advert;
