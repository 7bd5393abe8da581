//! Typed, zero-copy-where-possible access to the columns of a log record batch, accepting the
//! canonical types and common alternatives (Int64 ids, plain Utf8 strings) from foreign files.

use std::borrow::Cow;
use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;

use crate::error::{LogsError, Result};

fn column<'a>(batch: &'a RecordBatch, name: &str, source: &str) -> Result<&'a ArrayRef> {
    let arr = batch
        .column_by_name(name)
        .ok_or_else(|| LogsError::Schema {
            path: source.into(),
            message: format!("missing column `{name}`"),
        })?;
    if arr.null_count() > 0 {
        return Err(LogsError::Schema {
            path: source.into(),
            message: format!("column `{name}` contains {} null values", arr.null_count()),
        });
    }
    Ok(arr)
}

fn wrong_type(name: &str, source: &str, dt: &DataType, want: &str) -> LogsError {
    LogsError::Schema {
        path: source.into(),
        message: format!("column `{name}` has type {dt}, expected {want}"),
    }
}

/// Unsigned 64-bit ids (UInt64; Int64/Int32/UInt32 are converted, negative values rejected).
pub fn u64_column<'a>(batch: &'a RecordBatch, name: &str, source: &str) -> Result<Cow<'a, [u64]>> {
    let arr = column(batch, name, source)?;
    let signed = |v: &[i64]| -> Result<Cow<'a, [u64]>> {
        v.iter()
            .map(|&x| {
                u64::try_from(x).map_err(|_| LogsError::Schema {
                    path: source.into(),
                    message: format!("column `{name}` has a negative id {x}"),
                })
            })
            .collect::<Result<Vec<u64>>>()
            .map(Cow::Owned)
    };
    match arr.data_type() {
        DataType::UInt64 => Ok(Cow::Borrowed(
            arr.as_primitive::<UInt64Type>().values().as_ref(),
        )),
        DataType::Int64 => signed(arr.as_primitive::<Int64Type>().values()),
        DataType::Int32 => signed(
            &arr.as_primitive::<Int32Type>()
                .values()
                .iter()
                .map(|&x| i64::from(x))
                .collect::<Vec<_>>(),
        ),
        DataType::UInt32 => Ok(Cow::Owned(
            arr.as_primitive::<UInt32Type>()
                .values()
                .iter()
                .map(|&x| u64::from(x))
                .collect(),
        )),
        dt => Err(wrong_type(name, source, dt, "UInt64")),
    }
}

/// Signed 64-bit values (Int64, Int32, UInt32, or any Timestamp as its raw value).
pub fn i64_column<'a>(batch: &'a RecordBatch, name: &str, source: &str) -> Result<Cow<'a, [i64]>> {
    let arr = column(batch, name, source)?;
    match arr.data_type() {
        DataType::Int64 => Ok(Cow::Borrowed(
            arr.as_primitive::<Int64Type>().values().as_ref(),
        )),
        DataType::Int32 => Ok(Cow::Owned(
            arr.as_primitive::<Int32Type>()
                .values()
                .iter()
                .map(|&x| i64::from(x))
                .collect(),
        )),
        DataType::UInt32 => Ok(Cow::Owned(
            arr.as_primitive::<UInt32Type>()
                .values()
                .iter()
                .map(|&x| i64::from(x))
                .collect(),
        )),
        DataType::Timestamp(_, _) => {
            let data = arr.to_data();
            let buf = data
                .buffers()
                .first()
                .ok_or_else(|| wrong_type(name, source, arr.data_type(), "Int64"))?;
            let all: &[i64] = buf.typed_data::<i64>();
            Ok(Cow::Owned(
                all[data.offset()..data.offset() + data.len()].to_vec(),
            ))
        }
        dt => Err(wrong_type(name, source, dt, "Int64")),
    }
}

/// Unsigned 32-bit day indices (UInt32; Int32/Int64/UInt64 converted with range checks).
pub fn u32_column<'a>(batch: &'a RecordBatch, name: &str, source: &str) -> Result<Cow<'a, [u32]>> {
    let arr = column(batch, name, source)?;
    let conv = |x: i128| -> Result<u32> {
        u32::try_from(x).map_err(|_| LogsError::Schema {
            path: source.into(),
            message: format!("column `{name}` has value {x} outside 0..2³²"),
        })
    };
    match arr.data_type() {
        DataType::UInt32 => Ok(Cow::Borrowed(
            arr.as_primitive::<UInt32Type>().values().as_ref(),
        )),
        DataType::Int32 => arr
            .as_primitive::<Int32Type>()
            .values()
            .iter()
            .map(|&x| conv(x.into()))
            .collect::<Result<Vec<_>>>()
            .map(Cow::Owned),
        DataType::Int64 => arr
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .map(|&x| conv(x.into()))
            .collect::<Result<Vec<_>>>()
            .map(Cow::Owned),
        DataType::UInt64 => arr
            .as_primitive::<UInt64Type>()
            .values()
            .iter()
            .map(|&x| conv(x.into()))
            .collect::<Result<Vec<_>>>()
            .map(Cow::Owned),
        dt => Err(wrong_type(name, source, dt, "UInt32")),
    }
}

/// 64-bit floats (Float64; Float32 and integers converted).
pub fn f64_column<'a>(batch: &'a RecordBatch, name: &str, source: &str) -> Result<Cow<'a, [f64]>> {
    let arr = column(batch, name, source)?;
    match arr.data_type() {
        DataType::Float64 => Ok(Cow::Borrowed(
            arr.as_primitive::<Float64Type>().values().as_ref(),
        )),
        DataType::Float32 => Ok(Cow::Owned(
            arr.as_primitive::<Float32Type>()
                .values()
                .iter()
                .map(|&x| f64::from(x))
                .collect(),
        )),
        DataType::Int64 => Ok(Cow::Owned(
            arr.as_primitive::<Int64Type>()
                .values()
                .iter()
                .map(|&x| x as f64)
                .collect(),
        )),
        DataType::Int32 => Ok(Cow::Owned(
            arr.as_primitive::<Int32Type>()
                .values()
                .iter()
                .map(|&x| f64::from(x))
                .collect(),
        )),
        dt => Err(wrong_type(name, source, dt, "Float64")),
    }
}

/// A string column as per-row keys into a small dictionary.
#[derive(Debug, Clone)]
pub struct StrColumn<'a> {
    /// Key of each row into `dictionary`.
    pub keys: Cow<'a, [u32]>,
    /// Distinct strings.
    pub dictionary: Vec<String>,
}

fn keys_of<T: arrow_array::types::ArrowDictionaryKeyType>(arr: &ArrayRef) -> (Vec<u32>, ArrayRef)
where
    T::Native: TryInto<u32>,
{
    let d = arr.as_dictionary::<T>();
    let keys = d
        .keys()
        .values()
        .iter()
        .map(|&k| k.try_into().unwrap_or(u32::MAX))
        .collect();
    (keys, d.values().clone())
}

/// Strings: Dictionary(any integer key, Utf8) without copying the rows; plain Utf8/LargeUtf8
/// are interned row by row.
pub fn str_column<'a>(batch: &'a RecordBatch, name: &str, source: &str) -> Result<StrColumn<'a>> {
    let arr = column(batch, name, source)?;
    let strings_of = |values: &ArrayRef| -> Result<Vec<String>> {
        match values.data_type() {
            DataType::Utf8 => Ok(values
                .as_string::<i32>()
                .iter()
                .map(|s| s.unwrap_or("").to_string())
                .collect()),
            DataType::LargeUtf8 => Ok(values
                .as_string::<i64>()
                .iter()
                .map(|s| s.unwrap_or("").to_string())
                .collect()),
            dt => Err(wrong_type(name, source, dt, "Dictionary(Int32, Utf8)")),
        }
    };
    match arr.data_type() {
        DataType::Dictionary(key, _) => {
            let (keys, values): (Cow<'a, [u32]>, ArrayRef) = match key.as_ref() {
                DataType::Int32 => {
                    let d = arr.as_dictionary::<Int32Type>();
                    let k: Vec<u32> = d.keys().values().iter().map(|&k| k as u32).collect();
                    (Cow::Owned(k), d.values().clone())
                }
                DataType::UInt32 => {
                    let d = arr.as_dictionary::<UInt32Type>();
                    (
                        Cow::Borrowed(d.keys().values().as_ref()),
                        d.values().clone(),
                    )
                }
                DataType::Int8 => {
                    let (k, v) = keys_of::<Int8Type>(arr);
                    (Cow::Owned(k), v)
                }
                DataType::Int16 => {
                    let (k, v) = keys_of::<Int16Type>(arr);
                    (Cow::Owned(k), v)
                }
                DataType::UInt8 => {
                    let (k, v) = keys_of::<UInt8Type>(arr);
                    (Cow::Owned(k), v)
                }
                DataType::UInt16 => {
                    let (k, v) = keys_of::<UInt16Type>(arr);
                    (Cow::Owned(k), v)
                }
                DataType::Int64 => {
                    let (k, v) = keys_of::<Int64Type>(arr);
                    (Cow::Owned(k), v)
                }
                dt => return Err(wrong_type(name, source, dt, "Dictionary(Int32, Utf8)")),
            };
            let dictionary = strings_of(&values)?;
            if let Some(bad) = keys.iter().find(|&&k| k as usize >= dictionary.len()) {
                return Err(LogsError::Schema {
                    path: source.into(),
                    message: format!(
                        "column `{name}` has dictionary key {bad} outside its dictionary"
                    ),
                });
            }
            Ok(StrColumn { keys, dictionary })
        }
        DataType::Utf8 | DataType::LargeUtf8 => {
            let all = strings_of(arr)?;
            let mut map: HashMap<String, u32> = HashMap::new();
            let mut dictionary = Vec::new();
            let keys = all
                .into_iter()
                .map(|s| {
                    *map.entry(s.clone()).or_insert_with(|| {
                        dictionary.push(s);
                        (dictionary.len() - 1) as u32
                    })
                })
                .collect();
            Ok(StrColumn {
                keys: Cow::Owned(keys),
                dictionary,
            })
        }
        dt => Err(wrong_type(name, source, dt, "Dictionary(Int32, Utf8)")),
    }
}
