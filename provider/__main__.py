"""Entry point Pulumi's Python language host runs for `pulumi package add` (see PulumiPlugin.yaml).

The repository's top-level __main__.py is the stack program; this folder is the plugin.
"""

from llmstack_k8s.provider_host import main

if __name__ == "__main__":
    main()
