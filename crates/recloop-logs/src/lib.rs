//! Exposure and event logs: schema, Parquet/CSV reading and writing, streaming aggregation.
