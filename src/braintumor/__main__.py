from braintumor.cli import entry

entry()
