"""The one library every OMS service uses: envelope, contracts, topics, runtime."""
