from openfirst.core.redact import redact, redact_url, url_secrets


def test_credentials_in_urls_are_masked_and_listed():
    url = "https://user:sk-123456@api.example.com:8443/v1?api-key=q-secret&deployment=x&token=t0k3n"
    masked = redact_url(url)
    assert masked == "https://***@api.example.com:8443/v1?api-key=***&deployment=x&token=***"
    assert set(url_secrets(url)) >= {"user", "sk-123456", "q-secret", "t0k3n"}
    assert redact_url("http://127.0.0.1:8080/v1") == "http://127.0.0.1:8080/v1" and redact_url(None) is None
    assert redact("key sk-123456 and q-secret", url_secrets(url)) == "key *** and ***"
