//! The `orders` HTTP API: place an order (one local transaction: the order
//! row and its `Shop.OrderPlaced` fact in the outbox), read orders, and
//! receive billing's payment notices. The unsafe routes sit behind
//! `cairn_resilient::IdempotencyLayer`, so a retried request with the same
//! `Idempotency-Key` gets the first answer again.

use std::error::Error;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_resilient::{
    IdempotencyLayer, InMemoryIdempotencyStore, InMemoryStoreOptions, IDEMPOTENCY_KEY_HEADER,
};
use cairn_sql::{Outbox, RelayHandle};
use serde::Deserialize;
use sqlx::SqlitePool;

use crate::facts::{unix_time_ms, LineItem, OrderPlaced};
use crate::limits::{
    CUSTOMER_CHARS_MAX, HTTP_BODY_BYTES_MAX, ITEM_QUANTITY_MAX, ORDER_ITEMS_MAX, SKU_CHARS_MAX,
    TOTAL_CENTS_MAX,
};
use crate::orders::store::{self, OrderView, PaymentNotice};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The service's database.
    pub pool: SqlitePool,
    /// Wakes the relay after an order commits.
    pub relay: RelayHandle,
}

/// The body of `POST /orders`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    /// Who orders (`flaky` and `broke` make the fake card gateway fail).
    pub customer: String,
    /// What is ordered.
    pub items: Vec<LineItem>,
    /// What to charge, in cents.
    pub total_cents: i64,
}

impl NewOrder {
    fn validate(&self) -> Result<(), ApiError> {
        let invalid = |message: String| Err(ApiError::InvalidOrder(message));
        if self.customer.is_empty() || self.customer.chars().count() > CUSTOMER_CHARS_MAX {
            return invalid(format!(
                "customer must be 1 to {CUSTOMER_CHARS_MAX} characters"
            ));
        }
        if self.items.is_empty() || self.items.len() > ORDER_ITEMS_MAX {
            return invalid(format!("an order has 1 to {ORDER_ITEMS_MAX} items"));
        }
        for item in &self.items {
            if item.sku.is_empty() || item.sku.chars().count() > SKU_CHARS_MAX {
                return invalid(format!("a sku must be 1 to {SKU_CHARS_MAX} characters"));
            }
            if !(1..=ITEM_QUANTITY_MAX).contains(&item.quantity) {
                return invalid(format!("a quantity must be 1 to {ITEM_QUANTITY_MAX}"));
            }
        }
        if !(0..=TOTAL_CENTS_MAX).contains(&self.total_cents) {
            return invalid(format!("total_cents must be 0 to {TOTAL_CENTS_MAX}"));
        }
        Ok(())
    }
}

/// The query of `GET /orders`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Only this customer's orders.
    pub customer: Option<String>,
}

/// The router: `POST /orders`, `GET /orders`, `GET /orders/{id}`,
/// `POST /orders/{id}/payment-notice`.
pub fn router(state: AppState) -> Router {
    let idempotency_store = Arc::new(InMemoryIdempotencyStore::new(
        InMemoryStoreOptions::default(),
    ));
    Router::new()
        .route("/orders", post(place_order).get(list_orders))
        .route("/orders/{id}", get(order))
        .route("/orders/{id}/payment-notice", post(payment_notice))
        // Requests without an Idempotency-Key (every GET) pass through.
        .layer(IdempotencyLayer::new(idempotency_store))
        .layer(DefaultBodyLimit::max(HTTP_BODY_BYTES_MAX))
        .with_state(state)
}

async fn place_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewOrder>, JsonRejection>,
) -> Result<(StatusCode, Json<OrderView>), ApiError> {
    let Json(new_order) =
        body.map_err(|rejection| ApiError::InvalidOrder(rejection.body_text()))?;
    new_order.validate()?;
    let idempotency_key = headers
        .get(IDEMPOTENCY_KEY_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    if let Some(key) = &idempotency_key {
        if let Some(existing) = store::order_by_idempotency_key(&state.pool, key).await? {
            tracing::info!(order_id = %existing.id, "order repeated with the same Idempotency-Key; answering the first one");
            return Ok((StatusCode::OK, Json(existing)));
        }
    }
    let order = OrderPlaced {
        order_id: uuid::Uuid::new_v4().to_string(),
        customer: new_order.customer,
        items: new_order.items,
        total_cents: new_order.total_cents,
        placed_at_ms: unix_time_ms(),
    };
    // The order row and its fact commit together or not at all.
    let mut transaction = state.pool.begin().await?;
    let order_fact = Outbox::new()
        .enqueue_value(&mut transaction, &order)
        .await?;
    store::insert_order(
        &mut transaction,
        &order,
        idempotency_key.as_deref(),
        &order_fact,
    )
    .await
    .map_err(|error| match &error {
        sqlx::Error::Database(database) if database.is_unique_violation() => ApiError::KeyInUse,
        _ => ApiError::from(error),
    })?;
    transaction.commit().await?;
    state.relay.notify();
    tracing::info!(
        order_id = %order.order_id,
        customer = %order.customer,
        total_cents = order.total_cents,
        order_fact = %order_fact,
        "order placed; Shop.OrderPlaced committed to the outbox with it"
    );
    let view = store::order_by_id(&state.pool, &order.order_id)
        .await?
        .ok_or_else(|| ApiError::Internal("the order just committed is gone".into()))?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn list_orders(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let orders = store::list_orders(&state.pool, query.customer.as_deref()).await?;
    Ok(Json(serde_json::json!({ "orders": orders })))
}

async fn order(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    store::order_by_id(&state.pool, &id)
        .await?
        .map(Json)
        .ok_or(ApiError::UnknownOrder)
}

async fn payment_notice(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<PaymentNotice>, JsonRejection>,
) -> Result<Json<OrderView>, ApiError> {
    let Json(notice) = body.map_err(|rejection| ApiError::InvalidOrder(rejection.body_text()))?;
    if !store::record_notice(&state.pool, &id, &notice, unix_time_ms()).await? {
        return Err(ApiError::UnknownOrder);
    }
    tracing::info!(order_id = %id, payment_fact = %notice.payment_fact, charge_id = %notice.charge_id, "payment notice from billing recorded");
    store::order_by_id(&state.pool, &id)
        .await?
        .map(Json)
        .ok_or(ApiError::UnknownOrder)
}

/// An error answer in Cairn's shape: `{"error": {"code", "message"}}`.
#[derive(Debug)]
#[non_exhaustive]
pub enum ApiError {
    /// The request is malformed or out of range (400 `invalid_order`).
    InvalidOrder(String),
    /// No order with that id (404 `unknown_order`).
    UnknownOrder,
    /// Another request with the same `Idempotency-Key` is committing
    /// (409 `idempotency_key_in_use`).
    KeyInUse,
    /// The service failed (500 `internal`); the error and its causes go
    /// to the log.
    Internal(Box<dyn Error + Send + Sync>),
}

/// Every error of the database or the outbox is an internal one.
impl<E: Into<Box<dyn Error + Send + Sync>>> From<E> for ApiError {
    fn from(error: E) -> ApiError {
        ApiError::Internal(error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::InvalidOrder(message) => (StatusCode::BAD_REQUEST, "invalid_order", message),
            ApiError::UnknownOrder => (
                StatusCode::NOT_FOUND,
                "unknown_order",
                "no order with this id".to_owned(),
            ),
            ApiError::KeyInUse => (
                StatusCode::CONFLICT,
                "idempotency_key_in_use",
                "an order with this Idempotency-Key is being placed; retry".to_owned(),
            ),
            ApiError::Internal(error) => {
                let error = &*error as &dyn Error;
                tracing::error!(error, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the orders service failed; see its log".to_owned(),
                )
            }
        };
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        (status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(customer: &str, quantity: u32, total_cents: i64) -> NewOrder {
        NewOrder {
            customer: customer.to_owned(),
            items: vec![LineItem {
                sku: "tea".to_owned(),
                quantity,
            }],
            total_cents,
        }
    }

    #[test]
    fn orders_out_of_range_are_refused() {
        assert!(order("ada", 2, 900).validate().is_ok());
        assert!(order("", 2, 900).validate().is_err());
        assert!(order("ada", 0, 900).validate().is_err());
        assert!(order("ada", 2, -1).validate().is_err());
        assert!(order("ada", 2, TOTAL_CENTS_MAX + 1).validate().is_err());
        let mut empty = order("ada", 2, 900);
        empty.items.clear();
        assert!(empty.validate().is_err());
    }
}
