"""Defects the real engine on a real control plane showed (tests/cluster) that the SDK's mocks could not;
each test here fails on the behaviour before its fix."""

import pytest

from conftest import STACKS, rendered_stack


@pytest.mark.parametrize("stack", STACKS)
def test_every_helm_release_installs_into_a_namespace_the_stack_creates_and_deletes(stack):
    # Helm's createNamespace creates a namespace and never deletes it: `pulumi destroy` left `keda` and
    # `knative-operator` behind on the local cluster.
    rendered = rendered_stack(stack)
    namespaces = {o["metadata"]["name"] for o in rendered.objects if o["kind"] == "Namespace"}
    for release in rendered.helm_releases:
        assert not release.get("createNamespace"), f"release {release['name']} asks Helm to create its namespace"
        assert release["namespace"] in namespaces, f"release {release['name']}: no Namespace {release['namespace']}"
