//! Loading MovieLens in RecBole's atomic-file format.
//!
//! `NAME.inter` is tab-separated with a header of `field:type` names; the columns `user_id`,
//! `item_id` (required), `rating` (default 1) and `timestamp` (default 0) are read, in any order.
//! `NAME.item` (optional) gives per item a title (`movie_title`) and genres (`class` in ML-100K,
//! `genre` in ML-1M; space-separated). Parsing is hand-rolled over the raw bytes: ML-1M loads in a
//! few tens of milliseconds.

use super::DatasetName;
use super::dataset::Dataset;
use super::parse::{IdMap, lines, parse_f64, parse_i64};
use crate::error::{RecError, Result};
use std::path::Path;

/// Load `<dir>/<name>.inter` and, if present, `<dir>/<name>.item`.
pub fn load_dir(name: DatasetName, dir: &Path) -> Result<Dataset> {
    if name == DatasetName::Obd {
        return Err(RecError::Data {
            name: name.as_str().into(),
            reason: "obd is a bandit log, not a rating dataset; load it with data::obd::load"
                .into(),
        });
    }
    let inter = dir.join(format!("{}.inter", name.as_str()));
    let item = dir.join(format!("{}.item", name.as_str()));
    load_files(
        name.as_str(),
        &inter,
        item.is_file().then_some(item.as_path()),
    )
}

/// Load an interaction file and an optional item file; `name` labels the dataset and errors.
pub fn load_files(name: &str, inter: &Path, item: Option<&Path>) -> Result<Dataset> {
    let bytes = read(inter)?;
    let mut ds = parse_inter(name, &inter.display().to_string(), &bytes)?;
    ds.item_titles = vec![String::new(); ds.n_items()];
    ds.item_genres = vec![Vec::new(); ds.n_items()];
    if let Some(item) = item {
        let bytes = read(item)?;
        parse_items(&mut ds, &item.display().to_string(), &bytes)?;
    }
    Ok(ds)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| RecError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn data_err(name: &str, file: &str, line: usize, reason: impl std::fmt::Display) -> RecError {
    RecError::Data {
        name: name.to_string(),
        reason: format!("{file}:{line}: {reason}"),
    }
}

/// Column positions from a RecBole header (`user_id:token\titem_id:token...`).
fn header_columns(header: &[u8]) -> Vec<String> {
    header
        .split(|&b| b == b'\t')
        .map(|f| {
            let f = String::from_utf8_lossy(f);
            f.split(':').next().unwrap_or("").trim().to_string()
        })
        .collect()
}

/// Parse the bytes of an `.inter` file (`file` names it in errors).
pub fn parse_inter(name: &str, file: &str, bytes: &[u8]) -> Result<Dataset> {
    let mut it = lines(bytes);
    let header = match it.next() {
        Some((_, h)) if !h.is_empty() => h,
        _ => {
            return Err(data_err(
                name,
                file,
                1,
                "empty file, expected a header line",
            ));
        }
    };
    let cols = header_columns(header);
    let find = |c: &str| cols.iter().position(|x| x == c);
    let (Some(cu), Some(ci)) = (find("user_id"), find("item_id")) else {
        return Err(data_err(
            name,
            file,
            1,
            format!("header must name user_id and item_id columns, found {cols:?}"),
        ));
    };
    let cr = find("rating");
    let ct = find("timestamp");
    let ncols = cols.len();
    // ~25 bytes per ML line: a good capacity guess
    let cap = bytes.len() / 24;
    let mut ds = Dataset {
        name: name.to_string(),
        users: Vec::with_capacity(cap),
        items: Vec::with_capacity(cap),
        ratings: Vec::with_capacity(cap),
        timestamps: Vec::with_capacity(cap),
        ..Dataset::default()
    };
    let mut users = IdMap::default();
    let mut items = IdMap::default();
    let mut last_user: (&[u8], u32) = (&[], u32::MAX);
    let mut fields: Vec<&[u8]> = Vec::with_capacity(ncols);
    for (no, line) in it {
        if line.is_empty() {
            continue;
        }
        fields.clear();
        fields.extend(line.split(|&b| b == b'\t'));
        if fields.len() != ncols {
            return Err(data_err(
                name,
                file,
                no,
                format!(
                    "expected {ncols} tab-separated fields, found {}",
                    fields.len()
                ),
            ));
        }
        let u_raw = fields[cu];
        let u = if u_raw == last_user.0 {
            last_user.1
        } else {
            let u = users.index(u_raw);
            last_user = (u_raw, u);
            u
        };
        let i = items.index(fields[ci]);
        let r = match cr {
            Some(c) => parse_f64(fields[c]).ok_or_else(|| {
                data_err(
                    name,
                    file,
                    no,
                    format!(
                        "field rating: not a number: {:?}",
                        String::from_utf8_lossy(fields[c])
                    ),
                )
            })? as f32,
            None => 1.0,
        };
        let t = match ct {
            Some(c) => parse_i64(fields[c]).ok_or_else(|| {
                data_err(
                    name,
                    file,
                    no,
                    format!(
                        "field timestamp: not an integer: {:?}",
                        String::from_utf8_lossy(fields[c])
                    ),
                )
            })?,
            None => 0,
        };
        ds.users.push(u);
        ds.items.push(i);
        ds.ratings.push(r);
        ds.timestamps.push(t);
    }
    ds.user_ids = users.ids;
    ds.item_ids = items.ids;
    Ok(ds)
}

/// Parse the bytes of an `.item` file into `ds.item_titles`, `ds.genre_names`, `ds.item_genres`.
/// Items not in the interactions are ignored; items without a line keep empty metadata.
pub fn parse_items(ds: &mut Dataset, file: &str, bytes: &[u8]) -> Result<()> {
    let name = ds.name.clone();
    let mut it = lines(bytes);
    let header = match it.next() {
        Some((_, h)) if !h.is_empty() => h,
        _ => {
            return Err(data_err(
                &name,
                file,
                1,
                "empty file, expected a header line",
            ));
        }
    };
    let cols = header_columns(header);
    let find = |c: &str| cols.iter().position(|x| x == c);
    let Some(ci) = find("item_id") else {
        return Err(data_err(
            &name,
            file,
            1,
            format!("header must name an item_id column, found {cols:?}"),
        ));
    };
    let ctitle = find("movie_title");
    let cgenre = find("genre").or_else(|| find("class"));
    let mut index = IdMap::default();
    for id in &ds.item_ids {
        index.index(id.as_bytes());
    }
    let mut genres = IdMap::default();
    ds.item_titles.resize(ds.n_items(), String::new());
    ds.item_genres.resize(ds.n_items(), Vec::new());
    for (no, line) in it {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
        if fields.len() != cols.len() {
            return Err(data_err(
                &name,
                file,
                no,
                format!(
                    "expected {} tab-separated fields, found {}",
                    cols.len(),
                    fields.len()
                ),
            ));
        }
        let Some(i) = index.get(fields[ci]) else {
            continue;
        };
        let i = i as usize;
        if let Some(c) = ctitle {
            ds.item_titles[i] = String::from_utf8_lossy(fields[c]).trim().to_string();
        }
        if let Some(c) = cgenre {
            let mut g: Vec<u16> = fields[c]
                .split(|b| b.is_ascii_whitespace())
                .filter(|s| !s.is_empty())
                .map(|s| genres.index(s) as u16)
                .collect();
            g.sort_unstable();
            g.dedup();
            ds.item_genres[i] = g;
        }
    }
    ds.genre_names = genres.ids;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTER: &str = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n\
                         u1\tA (1990)\t5\t100\n\
                         u1\tB (1991)\t3\t90\n\
                         u2\tA (1990)\t4\t200\n";
    const ITEM: &str = "item_id:token\tmovie_title:token\trelease_year:float\tgenre:token\n\
                        A (1990)\tA\t1990\tDrama Comedy\n\
                        B (1991)\tB\t1991\tComedy\n\
                        Z (1999)\tZ\t1999\tHorror\n";

    #[test]
    fn parses_inter_and_items() {
        let mut ds = parse_inter("fx", "fx.inter", INTER.as_bytes()).unwrap();
        assert_eq!(ds.users, vec![0, 0, 1]);
        assert_eq!(ds.items, vec![0, 1, 0]);
        assert_eq!(ds.ratings, vec![5.0, 3.0, 4.0]);
        assert_eq!(ds.timestamps, vec![100, 90, 200]);
        assert_eq!(ds.item_ids, vec!["A (1990)", "B (1991)"]);
        parse_items(&mut ds, "fx.item", ITEM.as_bytes()).unwrap();
        // Z is not rated, so its genre Horror never enters the vocabulary
        assert_eq!(ds.genre_names, vec!["Drama", "Comedy"]);
        assert_eq!(ds.item_genres, vec![vec![0, 1], vec![1]]);
        assert_eq!(ds.item_titles, vec!["A", "B"]);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let bad = "user_id:token\titem_id:token\trating:float\n1\t2\t5\n1\t3\tfive\n";
        let e = parse_inter("fx", "fx.inter", bad.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("fx.inter:3") && e.contains("rating"), "{e}");
        let short = "user_id:token\titem_id:token\trating:float\n1\t2\n";
        let e = parse_inter("fx", "fx.inter", short.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fx.inter:2") && e.contains("3 tab-separated"),
            "{e}"
        );
        let nohdr = "foo\tbar\n";
        let e = parse_inter("fx", "fx.inter", nohdr.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("user_id"), "{e}");
        assert!(parse_inter("fx", "fx.inter", b"").is_err());
    }
}
