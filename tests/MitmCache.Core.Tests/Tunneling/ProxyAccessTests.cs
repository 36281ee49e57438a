using System.Net;
using System.Text;
using MitmCache.Core.Tests.Configuration;
using MitmCache.Tunneling;

namespace MitmCache.Core.Tests.Tunneling;

public class ProxyAccessTests
{
    private static ProxyAccess WithClients(params string[] networks) =>
        new(TestSettings.Create() with { AllowedClients = [.. networks.Select(IPNetwork.Parse)] });

    private static ProxyAccess WithAuth(string credential) => new(TestSettings.Create() with { ProxyAuth = credential });

    private static string Basic(string credential) => "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(credential));

    private static IPEndPoint Remote(string address) => new(IPAddress.Parse(address), 50000);

    [Theory]
    [InlineData("10.1.2.3")]
    [InlineData("192.168.1.1")]
    [InlineData("2001:db8::1")]
    public void IsClientAllowed_NoNetworksConfigured_AllowsAnyone(string address)
    {
        Assert.True(WithClients().IsClientAllowed(Remote(address)));
    }

    [Theory]
    [InlineData("10.0.0.0")]
    [InlineData("10.1.2.3")]
    [InlineData("10.255.255.255")]
    [InlineData("fd12:3456::1")]
    [InlineData("::ffff:10.1.2.3")] // an IPv4 client on a dual-stack socket
    public void IsClientAllowed_InAllowedNetwork_True(string address)
    {
        Assert.True(WithClients("10.0.0.0/8", "fd00::/8").IsClientAllowed(Remote(address)));
    }

    [Theory]
    [InlineData("11.0.0.1")]
    [InlineData("192.168.1.1")]
    [InlineData("2001:db8::1")]
    [InlineData("fe80::1")]
    [InlineData("::ffff:192.168.1.1")]
    public void IsClientAllowed_OutsideAllowedNetworks_False(string address)
    {
        Assert.False(WithClients("10.0.0.0/8", "fd00::/8").IsClientAllowed(Remote(address)));
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("127.8.9.10")]
    [InlineData("::1")]
    [InlineData("::ffff:127.0.0.1")]
    public void IsClientAllowed_Loopback_AlwaysTrue(string address)
    {
        Assert.True(WithClients("10.0.0.0/8").IsClientAllowed(Remote(address)));
    }

    [Fact]
    public void IsClientAllowed_SingleHostNetwork_OnlyThatHost()
    {
        var access = WithClients("192.168.1.20/32");

        Assert.True(access.IsClientAllowed(Remote("192.168.1.20")));
        Assert.False(access.IsClientAllowed(Remote("192.168.1.21")));
    }

    [Fact]
    public void IsClientAllowed_NonIpEndPoint_True()
    {
        var access = WithClients("10.0.0.0/8");

        Assert.True(access.IsClientAllowed(null));
        Assert.True(access.IsClientAllowed(new System.Net.Sockets.UnixDomainSocketEndPoint("/tmp/mitmcache.sock")));
    }

    [Fact]
    public void IsAuthorized_NoAuthConfigured_AlwaysTrue()
    {
        var access = new ProxyAccess(TestSettings.Create());

        Assert.False(access.RequiresAuthentication);
        Assert.True(access.IsAuthorized(null));
        Assert.True(access.IsAuthorized("Basic garbage"));
    }

    [Theory]
    [InlineData("user:secret")]
    [InlineData("user:pass:with:colons")]
    [InlineData("jürgen:pässwörd")]
    public void IsAuthorized_RightCredential_True(string credential)
    {
        var access = WithAuth(credential);

        Assert.True(access.RequiresAuthentication);
        Assert.True(access.IsAuthorized(Basic(credential)));
    }

    [Fact]
    public void IsAuthorized_SchemeCaseAndPadding_Tolerated()
    {
        var access = WithAuth("user:secret");
        var encoded = Convert.ToBase64String(Encoding.UTF8.GetBytes("user:secret"));

        Assert.True(access.IsAuthorized("basic " + encoded));
        Assert.True(access.IsAuthorized("BASIC " + encoded));
        Assert.True(access.IsAuthorized("Basic   " + encoded + "  "));
    }

    [Theory]
    [InlineData("user:wrong")]
    [InlineData("user:secre")]
    [InlineData("user:secret2")]
    [InlineData("User:secret")]
    [InlineData("other:secret")]
    [InlineData("")]
    public void IsAuthorized_WrongCredential_False(string credential)
    {
        Assert.False(WithAuth("user:secret").IsAuthorized(Basic(credential)));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("Basic")]
    [InlineData("Basic ")]
    [InlineData("Basic !!!not-base64!!!")]
    [InlineData("Basic dXNlcjpzZWNyZXQ")] // missing padding
    [InlineData("Basic user:secret")] // not encoded
    [InlineData("Bearer dXNlcjpzZWNyZXQ=")] // right bytes, wrong scheme
    [InlineData("Digest dXNlcjpzZWNyZXQ=")]
    [InlineData("BasicdXNlcjpzZWNyZXQ=")]
    public void IsAuthorized_MalformedOrMissing_False(string? header)
    {
        Assert.False(WithAuth("user:secret").IsAuthorized(header));
    }

    [Fact]
    public void IsAuthorized_OversizedHeader_False()
    {
        var huge = Basic("user:" + new string('x', 10_000));

        Assert.False(WithAuth("user:secret").IsAuthorized(huge));
    }
}
