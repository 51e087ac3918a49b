//! The ways of writing one batch, each as one committed transaction:
//!
//! * `unnest`: one `INSERT … SELECT * FROM unnest($1::int8[], …)` (arrays bound as parameters);
//! * `values`: one `INSERT … VALUES ($1,$2,$3,$4), (…), …` (with one fact: the plain single-row
//!   insert);
//! * `copy`: `COPY … FROM STDIN (FORMAT binary)`;
//! * `function`: Cairn's own `cairn_put_facts` (applied from its migration file), called the way
//!   the PostgreSQL store calls it.
//!
//! A batch without edges is one statement in autocommit mode, so the statement is its own
//! transaction. With edges, `unnest` and `values` write both tables in one statement (a
//! data-modifying CTE); `copy` runs two COPYs between BEGIN and COMMIT. The direct methods write
//! the seq the client numbered; the function assigns its own under its log-head lock.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures_util::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, CopyInSink, Statement};

use crate::rows::Batch;

/// How a batch reaches PostgreSQL.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Multi-row INSERT from unnest(arrays).
    Unnest,
    /// Multi-row INSERT with a VALUES list.
    Values,
    /// Binary COPY.
    Copy,
    /// Cairn's `cairn_put_facts` function.
    Function,
}

impl Method {
    /// The name printed in reports.
    pub fn name(self) -> &'static str {
        match self {
            Method::Unnest => "unnest",
            Method::Values => "values",
            Method::Copy => "copy",
            Method::Function => "function",
        }
    }
}

const UNNEST_FACTS_SQL: &str = "INSERT INTO cairn_facts (seq, hash, type_name, canonical) \
SELECT * FROM unnest($1::int8[], $2::bytea[], $3::text[], $4::bytea[])";
const UNNEST_FACTS_AND_EDGES_SQL: &str = "WITH facts AS (\
INSERT INTO cairn_facts (seq, hash, type_name, canonical) \
SELECT * FROM unnest($1::int8[], $2::bytea[], $3::text[], $4::bytea[])) \
INSERT INTO cairn_predecessors (predecessor, successor_type, successor_seq, role) \
SELECT * FROM unnest($5::bytea[], $6::text[], $7::int8[], $8::text[])";
const COPY_FACTS_SQL: &str =
    "COPY cairn_facts (seq, hash, type_name, canonical) FROM STDIN (FORMAT binary)";
const COPY_EDGES_SQL: &str = "COPY cairn_predecessors (predecessor, successor_type, \
successor_seq, role) FROM STDIN (FORMAT binary)";
/// The statement the PostgreSQL store sends for every batch.
const FUNCTION_SQL: &str = "SELECT ord, fact_seq, inserted, missing \
FROM cairn_put_facts($1, $2, $3, $4, $5, $6, $7)";

/// Writes batches with one method; statements are prepared before the first measured write.
pub struct Writer {
    method: Method,
    unnest_facts: Statement,
    unnest_facts_and_edges: Statement,
    function: Option<Statement>,
    /// `values` statements by (facts, edges) of the batch.
    values: HashMap<(usize, usize), Statement>,
}

impl Writer {
    /// Prepares the statements `method` needs.
    pub async fn prepare(client: &Client, method: Method) -> Result<Self> {
        let function = if method == Method::Function {
            Some(
                client
                    .prepare(FUNCTION_SQL)
                    .await
                    .context("preparing the function call")?,
            )
        } else {
            None
        };
        Ok(Writer {
            method,
            unnest_facts: client.prepare(UNNEST_FACTS_SQL).await?,
            unnest_facts_and_edges: client.prepare(UNNEST_FACTS_AND_EDGES_SQL).await?,
            function,
            values: HashMap::new(),
        })
    }

    /// Prepares the `values` statement for batches of this shape (outside the measured time).
    pub async fn prepare_values(
        &mut self,
        client: &Client,
        n_facts: usize,
        n_edges: usize,
    ) -> Result<()> {
        if self.method == Method::Values && !self.values.contains_key(&(n_facts, n_edges)) {
            let statement = client.prepare(&values_sql(n_facts, n_edges)).await?;
            self.values.insert((n_facts, n_edges), statement);
        }
        Ok(())
    }

    /// Writes `batch` as one committed transaction; returns when the commit has returned.
    pub async fn write(&mut self, client: &mut Client, batch: &Batch) -> Result<()> {
        match self.method {
            Method::Unnest => self.write_unnest(client, batch).await,
            Method::Values => self.write_values(client, batch).await,
            Method::Copy => write_copy(client, batch).await,
            Method::Function => self.write_function(client, batch).await,
        }
    }

    async fn write_unnest(&self, client: &Client, batch: &Batch) -> Result<()> {
        let facts: [&(dyn ToSql + Sync); 4] = [
            &batch.seqs,
            &batch.hashes,
            &batch.type_names,
            &batch.canonicals,
        ];
        if batch.edge_predecessors.is_empty() {
            client.execute(&self.unnest_facts, &facts).await?;
        } else {
            let successor_types = vec![crate::rows::TYPE_NAME; batch.edge_predecessors.len()];
            let mut parameters = facts.to_vec();
            parameters.extend_from_slice(&[
                &batch.edge_predecessors as &(dyn ToSql + Sync),
                &successor_types,
                &batch.edge_successor_seqs,
                &batch.edge_roles,
            ]);
            client
                .execute(&self.unnest_facts_and_edges, &parameters)
                .await?;
        }
        Ok(())
    }

    async fn write_values(&mut self, client: &Client, batch: &Batch) -> Result<()> {
        let shape = (batch.len(), batch.edge_predecessors.len());
        self.prepare_values(client, shape.0, shape.1).await?;
        let statement = &self.values[&shape];
        let mut parameters: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(4 * (shape.0 + shape.1));
        for fact_idx in 0..batch.len() {
            parameters.push(&batch.seqs[fact_idx]);
            parameters.push(&batch.hashes[fact_idx]);
            parameters.push(&batch.type_names[fact_idx]);
            parameters.push(&batch.canonicals[fact_idx]);
        }
        for edge_idx in 0..shape.1 {
            parameters.push(&batch.edge_predecessors[edge_idx]);
            parameters.push(&crate::rows::TYPE_NAME);
            parameters.push(&batch.edge_successor_seqs[edge_idx]);
            parameters.push(&batch.edge_roles[edge_idx]);
        }
        client.execute(statement, &parameters).await?;
        Ok(())
    }

    async fn write_function(&self, client: &Client, batch: &Batch) -> Result<()> {
        let statement = self
            .function
            .as_ref()
            .expect("prepared for the function method");
        let rows = client
            .query(
                statement,
                &[
                    &batch.hashes,
                    &batch.type_names,
                    &batch.canonicals,
                    &batch.external_predecessors,
                    &batch.edge_positions,
                    &batch.edge_roles,
                    &batch.edge_predecessors,
                ],
            )
            .await?;
        let inserted = rows
            .iter()
            .filter(|row| row.get::<_, Option<bool>>(2) == Some(true))
            .count();
        if inserted != batch.len() {
            bail!(
                "cairn_put_facts inserted {inserted} of {} facts ({} rows answered)",
                batch.len(),
                rows.len()
            );
        }
        Ok(())
    }
}

/// `INSERT … VALUES` for `n_facts` facts (and, through a CTE, `n_edges` edges).
fn values_sql(n_facts: usize, n_edges: usize) -> String {
    let tuples = |first_parameter: usize, n_rows: usize| {
        (0..n_rows)
            .map(|row_idx| {
                let p = first_parameter + 4 * row_idx;
                format!(
                    "(${}::int8, ${}::bytea, ${}::text, ${}::bytea)",
                    p,
                    p + 1,
                    p + 2,
                    p + 3
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let facts = format!(
        "INSERT INTO cairn_facts (seq, hash, type_name, canonical) VALUES {}",
        tuples(1, n_facts)
    );
    if n_edges == 0 {
        return facts;
    }
    // The edge tuples are (predecessor bytea, successor_type text, successor_seq int8, role text).
    let edges = (0..n_edges)
        .map(|edge_idx| {
            let p = 1 + 4 * n_facts + 4 * edge_idx;
            format!(
                "(${}::bytea, ${}::text, ${}::int8, ${}::text)",
                p,
                p + 1,
                p + 2,
                p + 3
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "WITH facts AS ({facts}) INSERT INTO cairn_predecessors \
         (predecessor, successor_type, successor_seq, role) VALUES {edges}"
    )
}

/// Binary COPY of the facts (and, in the same transaction, the edges).
async fn write_copy(client: &mut Client, batch: &Batch) -> Result<()> {
    if batch.edge_predecessors.is_empty() {
        return copy_facts(client.copy_in(COPY_FACTS_SQL).await?, batch).await;
    }
    let transaction = client.transaction().await?;
    copy_facts(transaction.copy_in(COPY_FACTS_SQL).await?, batch).await?;
    let sink = transaction.copy_in(COPY_EDGES_SQL).await?;
    let writer = BinaryCopyInWriter::new(sink, &[Type::BYTEA, Type::TEXT, Type::INT8, Type::TEXT]);
    pin_mut!(writer);
    for edge_idx in 0..batch.edge_predecessors.len() {
        writer
            .as_mut()
            .write(&[
                &batch.edge_predecessors[edge_idx],
                &crate::rows::TYPE_NAME,
                &batch.edge_successor_seqs[edge_idx],
                &batch.edge_roles[edge_idx],
            ])
            .await?;
    }
    writer.finish().await?;
    transaction.commit().await?;
    Ok(())
}

/// Copies the facts of `batch` into `sink` (a `COPY cairn_facts … FROM STDIN` just started).
async fn copy_facts(sink: CopyInSink<Bytes>, batch: &Batch) -> Result<()> {
    let writer = BinaryCopyInWriter::new(sink, &[Type::INT8, Type::BYTEA, Type::TEXT, Type::BYTEA]);
    pin_mut!(writer);
    for fact_idx in 0..batch.len() {
        writer
            .as_mut()
            .write(&[
                &batch.seqs[fact_idx],
                &batch.hashes[fact_idx],
                &batch.type_names[fact_idx],
                &batch.canonicals[fact_idx],
            ])
            .await?;
    }
    let copied = writer.finish().await?;
    if copied != batch.len() as u64 {
        bail!("COPY wrote {copied} of {} facts", batch.len());
    }
    Ok(())
}
