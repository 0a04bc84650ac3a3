//! One file per collector. Each implements [`crate::Collector`] and has
//! an entry in [`crate::collector::REGISTRY`] (a `sql` source's queries
//! are [`sql_query`]).

pub mod activity;
pub mod my_instance;
pub mod my_statements;
pub mod my_tables;
pub mod name_filter;
pub mod optional;
pub mod pg_instance;
pub mod pg_statements;
pub mod pg_tables;
pub mod plans;
pub mod session_samples;
pub mod sql_query;
