//! Governance: who may change what, and when. Freeze windows (here), approvals and change
//! requests.

pub mod freeze;
