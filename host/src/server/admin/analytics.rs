//! Contact-center analytics over a period: the whole report as JSON, or
//! one section as CSV for a spreadsheet.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::publishing::ErrorBody;
use crate::analytics::report::Report;
use crate::analytics::{Period, csv};
use crate::server::AppState;
use crate::server::error::ApiError;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(report))
        .routes(routes!(section_csv))
}

#[derive(Deserialize, IntoParams)]
pub struct PeriodQuery {
    /// First day, `YYYY-MM-DD` (default: six days before `to`).
    from: Option<String>,
    /// Last day, included (default: today).
    to: Option<String>,
    /// IANA time zone the days are counted in (default: the flow's first
    /// time group's, else UTC).
    tz: Option<String>,
}

impl PeriodQuery {
    /// The period asked for, on `state`'s clock and flow.
    pub fn period(&self, state: &AppState) -> Result<Period, ApiError> {
        let (zone, now_ms) = match &state.desk {
            Some(desk) => {
                let flow = desk.engine.flow();
                let zone = flow
                    .flow
                    .time_groups
                    .values()
                    .next()
                    .map(|g| g.time_zone.clone());
                (zone, desk.engine.now_ms())
            }
            None => {
                use crate::engine::clock::{Clock, SystemClock};
                (None, SystemClock.now_ms())
            }
        };
        Period::parse(
            self.from.as_deref(),
            self.to.as_deref(),
            self.tz.as_deref(),
            zone.as_deref().unwrap_or("UTC"),
            now_ms,
        )
        .map_err(ApiError::bad_request)
    }
}

/// The period's figures: per connector and day; per decision (entered, left
/// by each target, dropped); per chatbot; per queue (waits, abandonment,
/// handling percentiles); per agent (first response and handling).
#[utoipa::path(get, path = "/analytics", tag = "analytics", params(PeriodQuery),
    responses((status = 200, body = Report), (status = 400, body = ErrorBody)))]
async fn report(
    State(state): State<AppState>,
    Query(query): Query<PeriodQuery>,
) -> Result<axum::Json<Report>, ApiError> {
    let period = query.period(&state)?;
    let report = crate::analytics::report(&state.runner.storage, &period).await?;
    Ok(axum::Json(report))
}

/// One section of the period's report as CSV: `connectors`, `decisions`,
/// `chatbots`, `queues` or `agents`.
#[utoipa::path(get, path = "/analytics/{section}", tag = "analytics", params(PeriodQuery,
        ("section" = String, Path, description = "connectors, decisions, chatbots, queues or agents")),
    responses((status = 200, body = String, content_type = "text/csv"), (status = 404, body = ErrorBody)))]
async fn section_csv(
    State(state): State<AppState>,
    Path(section): Path<String>,
    Query(query): Query<PeriodQuery>,
) -> Result<Response, ApiError> {
    if !csv::SECTIONS.contains(&section.as_str()) {
        return Err(ApiError::not_found(format!(
            "no analytics section `{section}`; there are {}",
            csv::SECTIONS.join(", ")
        )));
    }
    let period = query.period(&state)?;
    let report = crate::analytics::report(&state.runner.storage, &period).await?;
    let text = csv::section(&report, &section).unwrap_or_default();
    let file = format!(
        "attachment; filename=\"{section}-{}-{}.csv\"",
        period.from, period.to
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, file),
        ],
        text,
    )
        .into_response())
}
