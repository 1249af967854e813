"""Feed polling: fetch (HTTP), parse (bytes -> entries), normalize (entries -> items), schedule."""
