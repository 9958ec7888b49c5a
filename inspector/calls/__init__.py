"""One module per kind of call: each turns an opened model + a prepared input into a Result."""
