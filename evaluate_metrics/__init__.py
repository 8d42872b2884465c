"""DevCV evaluation: metrics (`devcv`), the batched runner (`runner`, CLI `babyvlm eval`) and the lmms-eval plugin."""
