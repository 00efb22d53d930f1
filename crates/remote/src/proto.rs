//! Remote write 1.0 / remote read messages (`prompb/types.proto`,
//! `prompb/remote.proto`), declared with prost's derive so no protoc is
//! needed at build time. Field numbers are the wire contract.

/// `prometheus.WriteRequest`
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries`
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<Exemplar>,
    /// Native histograms are kept as raw bytes: ember does not store them
    /// yet, but must notice them rather than drop them silently.
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub histograms: Vec<Vec<u8>>,
}

/// `prometheus.Label`
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.Exemplar`
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// `prometheus.MetricMetadata`
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    #[prost(enumeration = "MetricType", tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// `prometheus.MetricMetadata.MetricType`
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetricType {
    Unknown = 0,
    Counter = 1,
    Gauge = 2,
    Histogram = 3,
    Gaugehistogram = 4,
    Summary = 5,
    Info = 6,
    Stateset = 7,
}

impl From<MetricType> for ember_model::MetricType {
    fn from(t: MetricType) -> Self {
        use ember_model::MetricType as M;
        match t {
            MetricType::Unknown => M::Unknown,
            MetricType::Counter => M::Counter,
            MetricType::Gauge => M::Gauge,
            MetricType::Histogram => M::Histogram,
            MetricType::Gaugehistogram => M::GaugeHistogram,
            MetricType::Summary => M::Summary,
            MetricType::Info => M::Info,
            MetricType::Stateset => M::StateSet,
        }
    }
}

impl From<ember_model::MetricType> for MetricType {
    fn from(t: ember_model::MetricType) -> Self {
        use ember_model::MetricType as M;
        match t {
            M::Unknown => MetricType::Unknown,
            M::Counter => MetricType::Counter,
            M::Gauge => MetricType::Gauge,
            M::Histogram => MetricType::Histogram,
            M::GaugeHistogram => MetricType::Gaugehistogram,
            M::Summary => MetricType::Summary,
            M::Info => MetricType::Info,
            M::StateSet => MetricType::Stateset,
        }
    }
}
