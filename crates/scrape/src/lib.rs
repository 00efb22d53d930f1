//! ember-scrape: from discovered target groups to scrape targets.
//!
//! - [`relabel`]: applies `relabel_configs` / `metric_relabel_configs`
//!   exactly as Prometheus's `model/relabel` does.
//! - [`discovery`]: target groups from `static_configs` and `file_sd_configs`
//!   (JSON and YAML files, re-read when they change).
//! - [`targets`]: Prometheus's `PopulateLabels`: the target label set, the
//!   dropped targets kept for the API, and the scrape URL.
//!
//! - [`append`]: one scraped page into storage (target labels,
//!   `metric_relabel_configs`, limits, cache, staleness, report series).
//! - [`scrape_loop`]: the HTTP fetch and the per-target loop; [`tls`] and
//!   [`oauth2`] configure its client; [`intervals`] summarises the actual
//!   time between scrapes.
//! - [`pool`]: the loops of one job, kept in step with discovery.
//!
//! - [`manager`]: all jobs, their discovery, and config reloads.

pub mod append;
pub mod discovery;
pub mod intervals;
pub mod manager;
pub mod oauth2;
pub mod pool;
pub mod relabel;
pub mod scrape_loop;
pub mod targets;
pub mod tls;

pub use discovery::{read_file_groups, static_groups, DiscoveryError, FileDiscovery, TargetGroup};
pub use intervals::IntervalSummaries;
pub use manager::{ActiveTargetInfo, ApplySummary, DroppedTargetInfo, JobStats, Manager};
pub use pool::ScrapePool;
pub use relabel::{process, process_builder};
pub use scrape_loop::{Health, HttpScraper, LoopState, MetadataSnapshot, ScrapeLoop, TargetHealth};
pub use targets::{build_targets, populate_labels, Target, TargetError, TargetSet};
