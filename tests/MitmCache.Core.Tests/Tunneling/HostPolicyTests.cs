using System.Net;
using MitmCache.Core.Tests.Configuration;
using MitmCache.Tunneling;

namespace MitmCache.Core.Tests.Tunneling;

public class HostPolicyTests
{
    private static readonly HostPolicy s_policy = new(["registry.test", "*.pkg.dev", "Mixed.Case.Test"], new HashSet<int> { 443, 5000 });

    [Theory]
    [InlineData("registry.test")]
    [InlineData("REGISTRY.test")]
    [InlineData("mixed.case.test")]
    [InlineData("europe-docker.pkg.dev")]
    [InlineData("a.b.pkg.dev")]
    [InlineData("US-DOCKER.PKG.DEV")]
    public void Decide_InterceptedHost_ReturnsIntercept(string host)
    {
        Assert.Equal(PolicyDecision.Intercept, s_policy.Decide(host, 443, out var reason));
        Assert.Equal("", reason);
    }

    [Theory]
    [InlineData("pkg.dev")] // a wildcard does not match its apex
    [InlineData("evilpkg.dev")] // nor a name that merely ends with the same letters
    [InlineData(".pkg.dev")]
    [InlineData("pkg.dev.attacker.test")]
    [InlineData("sub.registry.test")] // an exact name does not cover sub-domains
    [InlineData("registry.test.attacker.test")]
    [InlineData("example.com")]
    [InlineData("10.0.0.1")]
    [InlineData("::1")]
    public void Decide_OtherHost_ReturnsTunnel(string host)
    {
        Assert.Equal(PolicyDecision.Tunnel, s_policy.Decide(host, 443, out _));
    }

    [Fact]
    public void Decide_SecondAllowedPort_Allowed()
    {
        Assert.Equal(PolicyDecision.Intercept, s_policy.Decide("registry.test", 5000, out _));
        Assert.Equal(PolicyDecision.Tunnel, s_policy.Decide("example.com", 5000, out _));
    }

    [Theory]
    [InlineData(22)]
    [InlineData(80)]
    [InlineData(3128)]
    [InlineData(8443)]
    public void Decide_PortNotAllowed_RefusesAndNamesAllowedPorts(int port)
    {
        Assert.Equal(PolicyDecision.Refuse, s_policy.Decide("registry.test", port, out var reason));
        Assert.Contains($"port {port} is not allowed", reason, StringComparison.Ordinal);
        Assert.Contains("443, 5000", reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("169.254.169.254")] // AWS, GCP, Azure metadata
    [InlineData("169.254.0.1")]
    [InlineData("169.254.255.255")]
    [InlineData("fd00:ec2::254")] // AWS IMDS over IPv6
    [InlineData("fe80::1")]
    [InlineData("febf::1")] // still fe80::/10
    [InlineData("::ffff:169.254.169.254")] // IPv4-mapped
    [InlineData("::")]
    public void Decide_LinkLocalOrMetadataAddress_Refuses(string host)
    {
        Assert.Equal(PolicyDecision.Refuse, s_policy.Decide(host, 443, out var reason));
        Assert.Contains("link-local or metadata", reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Decide_DeniedAddressListedForInterception_StillRefuses()
    {
        var policy = new HostPolicy(["169.254.169.254"], new HashSet<int> { 443 });

        Assert.Equal(PolicyDecision.Refuse, policy.Decide("169.254.169.254", 443, out _));
    }

    [Theory]
    [InlineData("169.253.255.255")]
    [InlineData("169.255.0.1")]
    [InlineData("fec0::1")] // outside fe80::/10
    [InlineData("fd00:ec2::253")]
    [InlineData("127.0.0.1")]
    public void IsDeniedAddress_NeighbouringAddress_False(string address)
    {
        Assert.False(HostPolicy.IsDeniedAddress(IPAddress.Parse(address)));
    }

    [Fact]
    public void IsDeniedAddress_Ipv4Any_True()
    {
        Assert.True(HostPolicy.IsDeniedAddress(IPAddress.Any));
        Assert.Equal(PolicyDecision.Refuse, s_policy.Decide("0.0.0.0", 443, out _));
    }

    [Theory]
    [InlineData("64:ff9b::a9fe:a9fe")] // NAT64 of 169.254.169.254
    [InlineData("2002:a9fe:a9fe::1")] // 6to4 of 169.254.169.254
    [InlineData("::a9fe:a9fe")] // IPv4-compatible
    public void IsDeniedAddress_Ipv6FormsOfTheMetadataAddress_True(string address)
    {
        Assert.True(HostPolicy.IsDeniedAddress(IPAddress.Parse(address)));
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("127.255.0.9")]
    [InlineData("10.1.2.3")]
    [InlineData("172.16.0.1")]
    [InlineData("172.31.255.255")]
    [InlineData("192.168.1.1")]
    [InlineData("100.64.0.1")]
    [InlineData("100.127.255.255")]
    [InlineData("198.18.0.1")]
    [InlineData("192.0.0.8")]
    [InlineData("224.0.0.1")]
    [InlineData("255.255.255.255")]
    [InlineData("169.254.169.254")]
    [InlineData("0.0.0.0")]
    [InlineData("::1")]
    [InlineData("::")]
    [InlineData("fc00::1")]
    [InlineData("fd12:3456::1")]
    [InlineData("fec0::1")]
    [InlineData("ff02::1")]
    [InlineData("::ffff:10.0.0.1")]
    [InlineData("::ffff:127.0.0.1")]
    [InlineData("64:ff9b::a00:1")] // NAT64 of 10.0.0.1
    [InlineData("2002:c0a8:101::1")] // 6to4 of 192.168.1.1
    public void IsInternalAddress_LoopbackPrivateAndReserved_True(string address)
    {
        Assert.True(HostPolicy.IsInternalAddress(IPAddress.Parse(address)));
    }

    [Theory]
    [InlineData("8.8.8.8")]
    [InlineData("172.32.0.1")]
    [InlineData("172.15.255.255")]
    [InlineData("100.128.0.1")]
    [InlineData("192.169.0.1")]
    [InlineData("198.20.0.1")]
    [InlineData("2001:4860:4860::8888")]
    [InlineData("::ffff:8.8.8.8")]
    [InlineData("64:ff9b::808:808")]
    public void IsInternalAddress_PublicAddress_False(string address)
    {
        Assert.False(HostPolicy.IsInternalAddress(IPAddress.Parse(address)));
    }

    [Fact]
    public void Decide_InterceptedHostTheRootMayNotVouchFor_Tunnelled()
    {
        var policy = new HostPolicy(["registry.example.com", "registry.test", "*.pkg.dev"], new HashSet<int> { 443 }, host => host.EndsWith(".example.com", StringComparison.Ordinal));

        Assert.Equal(PolicyDecision.Intercept, policy.Decide("registry.example.com", 443, out _));
        Assert.Equal(PolicyDecision.Tunnel, policy.Decide("registry.test", 443, out _));
        Assert.Equal(PolicyDecision.Tunnel, policy.Decide("europe-docker.pkg.dev", 443, out _));
        Assert.False(policy.IsIntercepted("registry.test"));
    }

    [Fact]
    public void From_Settings_UsesInterceptAndAllowedPorts()
    {
        var policy = HostPolicy.From(TestSettings.Create() with { Intercept = ["*.example.com"], AllowedPorts = new HashSet<int> { 8443 } });

        Assert.Equal(PolicyDecision.Intercept, policy.Decide("registry.example.com", 8443, out _));
        Assert.Equal(PolicyDecision.Refuse, policy.Decide("registry.example.com", 443, out _));
    }

    [Theory]
    [InlineData("a")]
    [InlineData("localhost")]
    [InlineData("registry-1.docker.io")]
    [InlineData("xn--bcher-kva.example")]
    [InlineData("under_score.test")]
    [InlineData("1.2.3.4")]
    [InlineData("UPPER.case")]
    public void IsValidHostName_Valid_True(string host)
    {
        Assert.True(HostPolicy.IsValidHostName(host));
    }

    [Fact]
    public void IsValidHostName_LongestLabelAndName_True()
    {
        Assert.True(HostPolicy.IsValidHostName(new string('a', 63) + ".test"));
        Assert.True(HostPolicy.IsValidHostName(LongName(253)));
    }

    [Fact]
    public void IsValidHostName_LabelOf64OrNameOf254_False()
    {
        Assert.False(HostPolicy.IsValidHostName(new string('a', 64) + ".test"));
        Assert.False(HostPolicy.IsValidHostName(LongName(254)));
    }

    [Theory]
    [InlineData("")]
    [InlineData(".")]
    [InlineData(".registry.test")]
    [InlineData("-registry.test")]
    [InlineData("registry..test")]
    [InlineData("registry.test.")]
    [InlineData("registry test")]
    [InlineData("registry/test")]
    [InlineData("registry:443")]
    [InlineData("user@registry")]
    [InlineData("*.registry.test")]
    [InlineData("bücher.example")]
    [InlineData("registry\0.test")]
    [InlineData("registry\t.test")]
    [InlineData("[::1]")]
    public void IsValidHostName_Invalid_False(string host)
    {
        Assert.False(HostPolicy.IsValidHostName(host));
    }

    [Theory]
    [InlineData("registry.test", true)]
    [InlineData("*.pkg.dev", true)]
    [InlineData("*.dev", true)]
    [InlineData("*", false)]
    [InlineData("*.", false)]
    [InlineData("**.pkg.dev", false)]
    [InlineData("*.*.pkg.dev", false)]
    [InlineData("registry.*.test", false)]
    [InlineData("*pkg.dev", false)]
    public void IsValidPattern_Pattern_ReturnsExpected(string pattern, bool valid)
    {
        Assert.Equal(valid, HostPolicy.IsValidPattern(pattern));
    }

    /// <summary>Labels of up to 63 characters joined by dots, exactly <paramref name="length"/> long.</summary>
    private static string LongName(int length)
    {
        var labels = new List<string>();
        var remaining = length;
        while (remaining > 0)
        {
            var size = Math.Min(63, remaining);
            labels.Add(new string('a', size));
            remaining -= size + 1;
        }

        var name = string.Join('.', labels);
        Assert.Equal(length, name.Length);
        return name;
    }
}
