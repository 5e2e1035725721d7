//! The Responses API's state over a stateless backend: `previous_response_id`, `item_reference`
//! items, the stored-response endpoints, the models route, overloads and reasoning.

use std::time::Duration;

use reqwest::Response;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

use crate::helpers::pool::{add_account, create_key, spawn_with_mock};
use crate::helpers::TestApp;
use mock_upstream::{Behaviour, MockUpstream};

async fn create(app: &TestApp, key: &str, body: &Value) -> Response {
    reqwest::Client::new()
        .post(app.url("/v1/responses"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .expect("responses request")
}

async fn get(app: &TestApp, key: &str, path: &str) -> Response {
    reqwest::Client::new()
        .get(app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .expect("get request")
}

fn user(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

/// The texts of the message items of an input, in order (`input_text` and `output_text`).
fn texts(input: &Value) -> Vec<String> {
    input
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["type"] == "message")
        .flat_map(|item| item["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|part| part["text"].as_str().map(str::to_owned))
        .collect()
}

async fn ok_json(res: Response) -> Value {
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

async fn setup() -> (MockUpstream, TestApp, String) {
    let mock = MockUpstream::start();
    let account = mock.create_account("acct-state");
    let app = spawn_with_mock(&mock, |_| {}).await;
    add_account(&app, &account).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    (mock, app, key)
}

#[actix_web::test]
async fn a_three_turn_conversation_reaches_the_upstream_in_full() {
    let (mock, app, key) = setup().await;
    let first = ok_json(create(&app, &key, &json!({"model": "gpt-5", "input": "one"})).await).await;
    let second = ok_json(
        create(
            &app,
            &key,
            &json!({"model": "gpt-5", "input": "two", "previous_response_id": first["id"],
                    "instructions": "only for this turn"}),
        )
        .await,
    )
    .await;
    assert_eq!(second["previous_response_id"], first["id"]);
    let sent = mock.last_request().unwrap().body;
    assert_eq!(sent["instructions"], "only for this turn");
    // Streaming continues the same way.
    let third = create(
        &app,
        &key,
        &json!({"model": "gpt-5", "input": [user("three")], "stream": true,
                "previous_response_id": second["id"]}),
    )
    .await;
    assert_eq!(third.status(), 200);
    let text = third.text().await.unwrap();
    assert!(text.contains("response.completed"), "{text}");

    let sent = mock.last_request().unwrap().body;
    assert!(sent.get("previous_response_id").is_none());
    // Instructions are not inherited.
    assert_eq!(sent["instructions"], "");
    let said = texts(&sent["input"]);
    assert_eq!(said.len(), 5, "{said:?}");
    assert_eq!(said[0], "one");
    assert!(said[1].contains("You said: one"), "{said:?}");
    assert_eq!(said[2], "two");
    assert!(said[3].contains("You said: two"), "{said:?}");
    assert_eq!(said[4], "three");
}

#[actix_web::test]
async fn a_continued_conversation_stays_on_its_account() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |_| {}).await;
    for name in ["acct-a", "acct-b", "acct-c"] {
        add_account(&app, &mock.create_account(name)).await;
    }
    let (_, key) = create_key(&app, "client", |_| {}).await;
    let first =
        ok_json(create(&app, &key, &json!({"model": "gpt-5", "input": "start"})).await).await;
    let served = mock
        .last_request()
        .unwrap()
        .header("chatgpt-account-id")
        .map(str::to_owned);
    let mut previous = first["id"].clone();
    // Round robin would move every turn; a continued conversation goes back to its account.
    for turn in 0..4 {
        let next = ok_json(
            create(
                &app,
                &key,
                &json!({"model": "gpt-5", "input": format!("turn {turn}"),
                        "previous_response_id": previous}),
            )
            .await,
        )
        .await;
        let now = mock
            .last_request()
            .unwrap()
            .header("chatgpt-account-id")
            .map(str::to_owned);
        assert_eq!(now, served, "turn {turn}");
        previous = next["id"].clone();
    }
}

#[actix_web::test]
async fn the_documented_tool_flow_sends_only_the_output() {
    let (mock, app, key) = setup().await;
    let tools = json!([{"type": "function", "name": "get_weather",
        "parameters": {"type": "object", "properties": {}}}]);
    let first = ok_json(
        create(
            &app,
            &key,
            &json!({"model": "gpt-5", "input": "weather? [mock:tool_call]", "tools": tools}),
        )
        .await,
    )
    .await;
    let call = first["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["type"] == "function_call")
        .cloned()
        .expect("a function call");
    let second = create(
        &app,
        &key,
        &json!({"model": "gpt-5", "tools": tools, "previous_response_id": first["id"],
                "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]}),
    )
    .await;
    let body = ok_json(second).await;
    assert_eq!(body["status"], "completed");
    let sent = mock.last_request().unwrap().body;
    let kinds: Vec<&str> = sent["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["type"].as_str().unwrap_or("message"))
        .collect();
    assert_eq!(kinds, ["message", "function_call", "function_call_output"]);
}

#[actix_web::test]
async fn item_references_resolve_to_output_and_input_items() {
    let (mock, app, key) = setup().await;
    let first = ok_json(
        create(
            &app,
            &key,
            &json!({"model": "gpt-5", "input": "remember me"}),
        )
        .await,
    )
    .await;
    let answer = first["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["type"] == "message")
        .cloned()
        .expect("a message");
    let listed = ok_json(
        get(
            &app,
            &key,
            &format!(
                "/v1/responses/{}/input_items",
                first["id"].as_str().unwrap()
            ),
        )
        .await,
    )
    .await;
    let input_id = listed["data"][0]["id"]
        .as_str()
        .expect("input item id")
        .to_owned();

    ok_json(
        create(
            &app,
            &key,
            &json!({"model": "gpt-5", "input": [
                {"type": "item_reference", "id": input_id},
                {"type": "item_reference", "id": answer["id"]},
                user("and now?")
            ]}),
        )
        .await,
    )
    .await;
    let sent = mock.last_request().unwrap().body;
    assert!(sent["input"]
        .as_array()
        .unwrap()
        .iter()
        .all(|item| item["type"] != "item_reference"));
    let said = texts(&sent["input"]);
    assert_eq!(said[0], "remember me");
    assert!(said[1].contains("You said: remember me"), "{said:?}");
    assert_eq!(said[2], "and now?");

    let requests = mock.total_requests();
    let res = create(
        &app,
        &key,
        &json!({"model": "gpt-5", "input": [{"type": "item_reference", "id": "msg_unknown"}]}),
    )
    .await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("msg_unknown"),
        "{body}"
    );
    assert_eq!(
        mock.total_requests(),
        requests,
        "never reaches the upstream"
    );

    // The number of references is bounded.
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"type": "item_reference", "id": format!("msg_{i}")}))
        .collect();
    let res = create(&app, &key, &json!({"model": "gpt-5", "input": many})).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most"),
        "{body}"
    );
}

#[actix_web::test]
async fn another_keys_response_is_not_found() {
    let (mock, app, key) = setup().await;
    let (_, other) = create_key(&app, "other", |_| {}).await;
    let first =
        ok_json(create(&app, &key, &json!({"model": "gpt-5", "input": "mine"})).await).await;
    let id = first["id"].as_str().unwrap();
    let requests = mock.total_requests();
    for previous in [id, "resp_never_made"] {
        let res = create(
            &app,
            &other,
            &json!({"model": "gpt-5", "input": "x", "previous_response_id": previous}),
        )
        .await;
        assert_eq!(res.status(), 400);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "previous_response_not_found");
        assert_eq!(body["error"]["param"], "previous_response_id");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
    assert_eq!(mock.total_requests(), requests);
    assert_eq!(
        get(&app, &other, &format!("/v1/responses/{id}"))
            .await
            .status(),
        404
    );
}

#[actix_web::test]
async fn stored_responses_can_be_read_listed_and_deleted() {
    let (_mock, app, key) = setup().await;
    let first = ok_json(
        create(
            &app,
            &key,
            &json!({"model": "gpt-5", "input": [user("a"), user("b"), user("c")]}),
        )
        .await,
    )
    .await;
    let id = first["id"].as_str().unwrap();
    let fetched = ok_json(get(&app, &key, &format!("/v1/responses/{id}")).await).await;
    assert_eq!(fetched["id"], first["id"]);
    assert_eq!(fetched["output"], first["output"]);

    let page = ok_json(
        get(
            &app,
            &key,
            &format!("/v1/responses/{id}/input_items?limit=2&order=asc"),
        )
        .await,
    )
    .await;
    assert_eq!(page["object"], "list");
    assert_eq!(texts(&page["data"]), ["a", "b"]);
    assert_eq!(page["has_more"], true);
    let rest = ok_json(
        get(
            &app,
            &key,
            &format!(
                "/v1/responses/{id}/input_items?order=asc&after={}",
                page["last_id"].as_str().unwrap()
            ),
        )
        .await,
    )
    .await;
    assert_eq!(texts(&rest["data"]), ["c"]);
    assert_eq!(rest["has_more"], false);

    let res = reqwest::Client::new()
        .delete(app.url(&format!("/v1/responses/{id}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let deleted = ok_json(res).await;
    assert_eq!(
        deleted,
        json!({"id": id, "object": "response", "deleted": true})
    );
    assert_eq!(
        get(&app, &key, &format!("/v1/responses/{id}"))
            .await
            .status(),
        404
    );
}

#[actix_web::test]
async fn store_false_is_not_kept_and_content_is_encrypted() {
    let (_mock, app, key) = setup().await;
    let unstored = ok_json(
        create(
            &app,
            &key,
            &json!({"model": "gpt-5", "input": "forget me", "store": false}),
        )
        .await,
    )
    .await;
    assert_eq!(
        get(
            &app,
            &key,
            &format!("/v1/responses/{}", unstored["id"].as_str().unwrap())
        )
        .await
        .status(),
        404
    );
    ok_json(
        create(
            &app,
            &key,
            &json!({"model": "gpt-5", "input": "a secret plan"}),
        )
        .await,
    )
    .await;
    let rows = gpt2api::db::stored_response::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].input.contains("secret plan"));
    assert!(!rows[0].response.contains("secret plan"));
    assert!(rows[0].input.starts_with("enc:v1:"));
}

#[actix_web::test]
async fn expired_responses_are_gone_and_purged() {
    let (_mock, app, key) = setup().await;
    let first = ok_json(create(&app, &key, &json!({"model": "gpt-5", "input": "old"})).await).await;
    let id = first["id"].as_str().unwrap();
    gpt2api::db::stored_response::Entity::update_many()
        .col_expr(
            gpt2api::db::stored_response::Column::ExpiresAt,
            sea_orm::sea_query::Expr::value(chrono::Utc::now() - chrono::Duration::hours(1)),
        )
        .filter(gpt2api::db::stored_response::Column::Id.eq(id))
        .exec(&app.state.db)
        .await
        .unwrap();
    assert_eq!(
        get(&app, &key, &format!("/v1/responses/{id}"))
            .await
            .status(),
        404
    );
    let res = create(
        &app,
        &key,
        &json!({"model": "gpt-5", "input": "x", "previous_response_id": id}),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(app.state.responses.purge_expired(100).await.unwrap(), 1);
    assert!(gpt2api::db::response_item::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap()
        .is_empty());
}

#[actix_web::test]
async fn each_key_keeps_its_newest_responses_up_to_the_cap() {
    let mock = MockUpstream::start();
    let account = mock.create_account("acct-cap");
    let app = spawn_with_mock(&mock, |c| c.responses.max_per_key = 2).await;
    add_account(&app, &account).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    let (_, other) = create_key(&app, "other", |_| {}).await;
    let theirs =
        ok_json(create(&app, &other, &json!({"model": "gpt-5", "input": "x"})).await).await;
    let mut ids = Vec::new();
    for turn in 0..3 {
        let made = ok_json(
            create(
                &app,
                &key,
                &json!({"model": "gpt-5", "input": format!("n{turn}")}),
            )
            .await,
        )
        .await;
        ids.push(made["id"].as_str().unwrap().to_owned());
    }
    let status = |key: String, id: String| {
        let app = &app;
        async move {
            get(app, &key, &format!("/v1/responses/{id}"))
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        status(key.clone(), ids[0].clone()).await,
        404,
        "the oldest went"
    );
    assert_eq!(status(key.clone(), ids[1].clone()).await, 200);
    assert_eq!(status(key.clone(), ids[2].clone()).await, 200);
    // Another key's responses are not counted against this one.
    let theirs = theirs["id"].as_str().unwrap().to_owned();
    assert_eq!(status(other.clone(), theirs).await, 200);
}

#[actix_web::test]
async fn turned_off_the_store_answers_a_clear_400() {
    let mock = MockUpstream::start();
    let account = mock.create_account("acct-off");
    let app = spawn_with_mock(&mock, |c| c.responses.store = false).await;
    add_account(&app, &account).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    let first = ok_json(create(&app, &key, &json!({"model": "gpt-5", "input": "x"})).await).await;
    let res = create(
        &app,
        &key,
        &json!({"model": "gpt-5", "input": "y", "previous_response_id": first["id"]}),
    )
    .await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("turned off"),
        "{body}"
    );
}

#[actix_web::test]
async fn instances_sharing_a_database_share_the_store() {
    let mock = MockUpstream::start();
    let account = mock.create_account("acct-shared-store");
    let first = spawn_with_mock(&mock, |c| c.pool.reload_interval_seconds = 1).await;
    let second =
        crate::helpers::start(first.config.clone(), first.dir.clone(), first.database()).await;
    add_account(&first, &account).await;
    second.state.pool.reload().await.unwrap();
    let (_, key) = create_key(&first, "client", |_| {}).await;
    let made =
        ok_json(create(&first, &key, &json!({"model": "gpt-5", "input": "on A"})).await).await;
    ok_json(
        create(
            &second,
            &key,
            &json!({"model": "gpt-5", "input": "on B", "previous_response_id": made["id"]}),
        )
        .await,
    )
    .await;
    let said = texts(&mock.last_request().unwrap().body["input"]);
    assert_eq!(said.first().map(String::as_str), Some("on A"));
    assert_eq!(said.last().map(String::as_str), Some("on B"));
}

#[actix_web::test]
async fn models_can_be_retrieved_by_id() {
    let (_mock, app, key) = setup().await;
    for id in ["gpt-5", "gpt-5-high", "gpt-5(low)"] {
        let model = ok_json(get(&app, &key, &format!("/v1/models/{id}")).await).await;
        assert_eq!(model["id"], id);
        assert_eq!(model["object"], "model");
    }
    let res = get(&app, &key, "/v1/models/gpt-unknown").await;
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found");
}

#[actix_web::test]
async fn an_overload_moves_on_without_cooling_the_account() {
    let mock = MockUpstream::start();
    let busy = mock.create_account("acct-busy");
    let calm = mock.create_account("acct-calm");
    let app = spawn_with_mock(&mock, |c| {
        c.pool.strategy = gpt2api::config::Strategy::FillFirst;
    })
    .await;
    let busy_row = add_account(&app, &busy).await;
    add_account(&app, &calm).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    mock.queue_behaviour(
        "acct-busy",
        Behaviour::StreamFailed("server_is_overloaded".into()),
        1,
    );
    let body = ok_json(create(&app, &key, &json!({"model": "gpt-5", "input": "hi"})).await).await;
    assert_eq!(body["status"], "completed");
    assert_eq!(mock.request_count("acct-calm"), 1);
    let row = crate::helpers::pool::account_row(&app, busy_row.id).await;
    assert!(row
        .cooldown_until
        .is_none_or(|until| until <= chrono::Utc::now() + chrono::Duration::seconds(5)));
    // The busy account serves the next request again.
    ok_json(create(&app, &key, &json!({"model": "gpt-5", "input": "again"})).await).await;
    assert_eq!(mock.request_count("acct-busy"), 2);
}

#[actix_web::test]
async fn when_every_attempt_is_overloaded_the_answer_is_503() {
    let mock = MockUpstream::start();
    let account = mock.create_account("acct-only");
    let app = spawn_with_mock(&mock, |_| {}).await;
    add_account(&app, &account).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    mock.set_behaviour("acct-only", Behaviour::ServerError(503));
    let res = create(&app, &key, &json!({"model": "gpt-5", "input": "hi"})).await;
    assert_eq!(res.status(), 503);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry <= 10, "{retry}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "server_overloaded");
    // Still usable once the backend recovers.
    mock.set_behaviour("acct-only", Behaviour::Ok);
    tokio::time::sleep(Duration::from_millis(50)).await;
    ok_json(create(&app, &key, &json!({"model": "gpt-5", "input": "hi"})).await).await;
}

#[actix_web::test]
async fn reasoning_is_forwarded_as_the_client_gave_it() {
    let (mock, app, key) = setup().await;
    ok_json(create(&app, &key, &json!({"model": "gpt-5", "input": "plain"})).await).await;
    let sent = mock.last_request().unwrap().body;
    assert!(sent.get("reasoning").is_none(), "{sent}");
    ok_json(
        create(
            &app,
            &key,
            &json!({"model": "gpt-5", "input": "x", "reasoning": {"effort": "low"}}),
        )
        .await,
    )
    .await;
    assert_eq!(
        mock.last_request().unwrap().body["reasoning"],
        json!({"effort": "low"})
    );
}
