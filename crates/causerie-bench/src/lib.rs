//! A load generator for Socket.IO chat servers, so that Causerie and its peers (Node's socket.io,
//! Flask-SocketIO, a bare socketioxide server) are measured by the same clients in the same run.
//!
//! - [`frame`]: the Engine.IO v4 / Socket.IO v5 text framing, parsed and written by hand.
//! - [`client`]: one lean websocket client per simulated user.
//! - [`probe`]: the text a sender puts in each message to time its delivery.
//! - [`schedule`]: open-loop send times, so a slow server cannot slow the load down.
//! - [`stats`]: latency histograms and delivery counts, per load step.
//! - [`usage`]: a process's CPU time and memory, from `/proc`.
//! - [`peer`]: the servers under test, installed and started as people run them.
//! - [`scenario`]: hold, fan-out and storm ladders, durable ingest.
//! - [`nodes`]: the same on one node on SQLite, one on PostgreSQL, and two on PostgreSQL + Redis.
//! - [`report`]: JSON, Markdown, the SVG chart, and the standing against the targets.
//!
//! Why not a full Socket.IO client library: at 10,000 connections in one process, each client must
//! cost a few kilobytes and no thread; this one is a tokio task, a websocket, and a few parsed
//! bytes per frame. It speaks only what the benchmark needs: connect, `welcome`, `message`,
//! acks, pings.
#![warn(missing_docs)]

pub mod abuse;
pub mod client;
pub mod frame;
pub mod nodes;
pub mod peer;
pub mod probe;
pub mod report;
pub mod scenario;
pub mod schedule;
pub mod stats;
pub mod usage;
