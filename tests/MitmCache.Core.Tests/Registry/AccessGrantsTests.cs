using MitmCache.Registry;

namespace MitmCache.Core.Tests.Registry;

public class AccessGrantsTests
{
    private const string Alice = "Bearer alice-token";
    private const string Bob = "Bearer bob-token";

    private readonly FakeTimeProvider _time = new();
    private readonly AccessGrants _grants;

    public AccessGrantsTests()
    {
        _grants = new AccessGrants(_time);
    }

    [Fact]
    public void IsGranted_AfterGrant_TrueForThatCredentialRegistryAndRepository()
    {
        _grants.Grant(Alice, "registry.test", "team/app");

        Assert.True(_grants.IsGranted(Alice, "registry.test", "team/app"));
        Assert.False(_grants.IsGranted(Alice, "registry.test", "team/other"));
        Assert.False(_grants.IsGranted(Alice, "other.test", "team/app"));
    }

    [Fact]
    public void IsGranted_DifferentCredential_NeverSharesAGrant()
    {
        _grants.Grant(Alice, "registry.test", "team/app");

        Assert.False(_grants.IsGranted(Bob, "registry.test", "team/app"));
        Assert.False(_grants.IsGranted("Bearer alice-token ", "registry.test", "team/app"));
        Assert.False(_grants.IsGranted("Basic YWxpY2U6cHc=", "registry.test", "team/app"));
    }

    [Fact]
    public void IsGranted_RegistryAndRepositorySplitDifferently_NotGranted()
    {
        _grants.Grant(Alice, "registry.test", "team/app");

        Assert.False(_grants.IsGranted(Alice, "registry.test/team", "app"));
    }

    [Fact]
    public void IsGranted_OtherInstance_DoesNotSeeGrant()
    {
        // Keys are HMACs under a per-instance secret: nothing is derivable from the credential alone.
        _grants.Grant(Alice, "registry.test", "team/app");

        Assert.False(new AccessGrants(_time).IsGranted(Alice, "registry.test", "team/app"));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    public void Grant_NoCredential_GrantsNothing(string? authorization)
    {
        _grants.Grant(authorization, "registry.test", "team/app");

        Assert.False(_grants.IsGranted(authorization, "registry.test", "team/app"));
        Assert.False(_grants.IsGranted(null, "registry.test", "team/app"));
        Assert.False(_grants.IsGranted("", "registry.test", "team/app"));
    }

    [Fact]
    public void IsGranted_AfterFiveMinutes_Expired()
    {
        _grants.Grant(Alice, "registry.test", "team/app");

        _time.Advance(TimeSpan.FromMinutes(5) - TimeSpan.FromTicks(1));
        Assert.True(_grants.IsGranted(Alice, "registry.test", "team/app"));

        _time.Advance(TimeSpan.FromTicks(1));
        Assert.False(_grants.IsGranted(Alice, "registry.test", "team/app"));
    }

    [Fact]
    public void Grant_Again_ExtendsLifetime()
    {
        _grants.Grant(Alice, "registry.test", "team/app");
        _time.Advance(TimeSpan.FromMinutes(4));

        _grants.Grant(Alice, "registry.test", "team/app");
        _time.Advance(TimeSpan.FromMinutes(4));

        Assert.True(_grants.IsGranted(Alice, "registry.test", "team/app"));
    }

    [Fact]
    public void Revoke_Grant_RemovesOnlyThatGrant()
    {
        _grants.Grant(Alice, "registry.test", "team/app");
        _grants.Grant(Alice, "registry.test", "team/other");
        _grants.Grant(Bob, "registry.test", "team/app");

        _grants.Revoke(Alice, "registry.test", "team/app");

        Assert.False(_grants.IsGranted(Alice, "registry.test", "team/app"));
        Assert.True(_grants.IsGranted(Alice, "registry.test", "team/other"));
        Assert.True(_grants.IsGranted(Bob, "registry.test", "team/app"));
    }

    [Fact]
    public void Revoke_NoCredentialOrUnknown_DoesNothing()
    {
        _grants.Grant(Alice, "registry.test", "team/app");

        _grants.Revoke(null, "registry.test", "team/app");
        _grants.Revoke("", "registry.test", "team/app");
        _grants.Revoke(Bob, "registry.test", "team/app");

        Assert.True(_grants.IsGranted(Alice, "registry.test", "team/app"));
    }
}
