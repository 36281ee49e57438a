using System.Runtime.Versioning;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MitmCache.Certificates;

namespace MitmCache.Core.Tests.Certificates;

public sealed class CertificateAuthorityTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2025, 6, 1, 12, 0, 0, TimeSpan.Zero));

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Create_NoDomains_RootHasCaExtensions()
    {
        using var ca = CertificateAuthority.Create([], _time);
        var root = ca.Certificate;

        Assert.True(root.HasPrivateKey);
        Assert.NotNull(root.GetECDsaPrivateKey());
        Assert.Equal(256, root.GetECDsaPublicKey()!.KeySize);
        Assert.Equal(root.SubjectName.RawData, root.IssuerName.RawData);
        Assert.StartsWith("CN=MitmCache Root CA ", root.Subject, StringComparison.Ordinal);
        Assert.EndsWith(" 2025-06-01, O=MitmCache", root.Subject, StringComparison.Ordinal);

        var basic = Assert.Single(root.Extensions.OfType<X509BasicConstraintsExtension>());
        Assert.True(basic.Critical);
        Assert.True(basic.CertificateAuthority);
        Assert.True(basic.HasPathLengthConstraint);
        Assert.Equal(0, basic.PathLengthConstraint);

        var usage = Assert.Single(root.Extensions.OfType<X509KeyUsageExtension>());
        Assert.True(usage.Critical);
        Assert.Equal(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, usage.KeyUsages);

        var ski = Assert.Single(root.Extensions.OfType<X509SubjectKeyIdentifierExtension>());
        Assert.False(ski.Critical);
        Assert.Equal(20, ski.SubjectKeyIdentifierBytes.Length);

        Assert.Null(root.Extensions[NameConstraintsExtension.OidValue]);
    }

    [Fact]
    public void Create_Always_ValidTenYearsFromYesterdayWithPositiveSixteenByteSerial()
    {
        using var ca = CertificateAuthority.Create([], _time);

        Assert.Equal(_time.GetUtcNow().AddDays(-1), ca.NotBefore);
        Assert.Equal(_time.GetUtcNow().AddYears(10), ca.NotAfter);
        var serial = ca.Certificate.SerialNumberBytes.Span;
        Assert.Equal(16, serial.Length);
        Assert.True(serial[0] is >= 0x40 and < 0x80);
    }

    [Fact]
    public void Create_TwoRoots_DifferentSerialsAndKeys()
    {
        using var a = CertificateAuthority.Create([], _time);
        using var b = CertificateAuthority.Create([], _time);

        Assert.NotEqual(a.Certificate.SerialNumber, b.Certificate.SerialNumber);
        Assert.NotEqual(a.Sha256Fingerprint, b.Sha256Fingerprint);
    }

    [Fact]
    public void Sha256Fingerprint_Always_UppercaseHexPairsSeparatedByColons()
    {
        using var ca = CertificateAuthority.Create([], _time);

        var expected = string.Join(':', SHA256.HashData(ca.ExportDer()).Select(b => b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal(expected, ca.Sha256Fingerprint);
        Assert.Matches("^([0-9A-F]{2}:){31}[0-9A-F]{2}$", ca.Sha256Fingerprint);
    }

    [Fact]
    public void ExportPem_Always_RoundTripsToSameCertificateWithoutKey()
    {
        using var ca = CertificateAuthority.Create([], _time);

        var pem = ca.ExportPem();
        using var parsed = X509Certificate2.CreateFromPem(pem);

        Assert.StartsWith("-----BEGIN CERTIFICATE-----\n", pem, StringComparison.Ordinal);
        Assert.EndsWith("-----END CERTIFICATE-----\n", pem, StringComparison.Ordinal);
        Assert.Equal(ca.ExportDer(), parsed.RawData);
        Assert.False(parsed.HasPrivateKey);
        Assert.False(ca.PublicCertificate.HasPrivateKey);
    }

    [Fact]
    public void Save_ThenLoad_SameCertificateAndUsableKey()
    {
        using var ca = CertificateAuthority.Create(["example.com"], _time);
        ca.Save(_temp.Path);

        using var loaded = CertificateAuthority.Load(_temp.Path);

        Assert.Equal(ca.ExportDer(), loaded.ExportDer());
        Assert.Equal(ca.Sha256Fingerprint, loaded.Sha256Fingerprint);
        Assert.True(loaded.Certificate.HasPrivateKey);
        using var leaf = new LeafCertificateFactory(loaded, TimeProvider.System).Mint("registry.example.com");
        Assert.True(CertificateTestHelpers.Validate(leaf, ca.PublicCertificate).Valid);
    }

    [UnixFact]
    [UnsupportedOSPlatform("windows")]
    public void Save_Always_KeyIs0600AndCertificateIs0644AndNoTempFilesRemain()
    {
        using var ca = CertificateAuthority.Create([], _time);
        ca.Save(_temp.Path);

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(_temp.Combine("root.key")));
        Assert.Equal(
            UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
            File.GetUnixFileMode(_temp.Combine("root.crt")));
        Assert.Equal(["root.crt", "root.key"], Directory.GetFiles(_temp.Path).Select(Path.GetFileName).Order());
        Assert.StartsWith("-----BEGIN PRIVATE KEY-----\n", File.ReadAllText(_temp.Combine("root.key")), StringComparison.Ordinal);
    }

    [UnixFact]
    [UnsupportedOSPlatform("windows")]
    public void Save_DirectoryMissing_CreatesItAs0700()
    {
        var directory = _temp.Combine("data", "ca");
        using var ca = CertificateAuthority.Create([], _time);
        ca.Save(directory);

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(directory));
    }

    [UnixFact]
    [UnsupportedOSPlatform("windows")]
    public void Save_FilesExist_ReplacesThemAndKeyStays0600()
    {
        using var first = CertificateAuthority.Create([], _time);
        first.Save(_temp.Path);
        using var second = CertificateAuthority.Create([], _time);
        second.Save(_temp.Path);

        using var loaded = CertificateAuthority.Load(_temp.Path);
        Assert.Equal(second.Sha256Fingerprint, loaded.Sha256Fingerprint);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(_temp.Combine("root.key")));
    }

    [UnixTheory]
    [UnsupportedOSPlatform("windows")]
    [InlineData(UnixFileMode.GroupRead)]
    [InlineData(UnixFileMode.OtherRead)]
    [InlineData(UnixFileMode.GroupWrite)]
    [InlineData(UnixFileMode.OtherWrite)]
    public void Load_KeyAccessibleToOthers_ThrowsNamingChmod600(UnixFileMode extra)
    {
        using var ca = CertificateAuthority.Create([], _time);
        ca.Save(_temp.Path);
        var keyPath = _temp.Combine("root.key");
        File.SetUnixFileMode(keyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | extra);

        var e = Assert.Throws<CertificateAuthorityException>(() => CertificateAuthority.Load(_temp.Path));

        Assert.Contains(keyPath, e.Message, StringComparison.Ordinal);
        Assert.Contains($"chmod 600 {keyPath}", e.Message, StringComparison.Ordinal);
    }

    [UnixFact]
    [UnsupportedOSPlatform("windows")]
    public void Load_Key0644_MessageShowsMode()
    {
        using var ca = CertificateAuthority.Create([], _time);
        ca.Save(_temp.Path);
        var keyPath = _temp.Combine("root.key");
        File.SetUnixFileMode(keyPath, PrivateFile.WorldReadable);

        var e = Assert.Throws<CertificateAuthorityException>(() => CertificateAuthority.Load(_temp.Path));

        Assert.Equal(
            $"Private key file '{keyPath}' has mode 0644, so other users can read or change it. Refusing to use it. Fix it with: chmod 600 {keyPath}",
            e.Message);
    }

    [UnixFact]
    [UnsupportedOSPlatform("windows")]
    public void Load_KeyFixedWithChmod600_Loads()
    {
        using var ca = CertificateAuthority.Create([], _time);
        ca.Save(_temp.Path);
        var keyPath = _temp.Combine("root.key");
        File.SetUnixFileMode(keyPath, PrivateFile.WorldReadable);
        Assert.Throws<CertificateAuthorityException>(() => CertificateAuthority.Load(_temp.Path));

        File.SetUnixFileMode(keyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);

        using var loaded = CertificateAuthority.Load(_temp.Path);
        Assert.Equal(ca.Sha256Fingerprint, loaded.Sha256Fingerprint);
    }

    [Fact]
    public void Load_EmptyDirectory_ThrowsNamingCertificateFile()
    {
        var e = Assert.Throws<CertificateAuthorityException>(() => CertificateAuthority.Load(_temp.Path));

        Assert.Contains(_temp.Combine("root.crt"), e.Message, StringComparison.Ordinal);
        Assert.Contains("does not exist", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_KeyMissing_ThrowsNamingKeyFile()
    {
        using var ca = CertificateAuthority.Create([], _time);
        ca.Save(_temp.Path);
        File.Delete(_temp.Combine("root.key"));

        var e = Assert.Throws<CertificateAuthorityException>(() => CertificateAuthority.Load(_temp.Path));

        Assert.Contains($"'{_temp.Combine("root.key")}' is missing", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_CorruptCertificate_ThrowsNamingCertificateFile()
    {
        using var ca = CertificateAuthority.Create([], _time);
        ca.Save(_temp.Path);
        File.WriteAllText(_temp.Combine("root.crt"), "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n");

        var e = Assert.Throws<CertificateAuthorityException>(() => CertificateAuthority.Load(_temp.Path));

        Assert.Contains(_temp.Combine("root.crt"), e.Message, StringComparison.Ordinal);
        Assert.Contains("not a valid PEM certificate", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("garbage\n")]
    [InlineData("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")]
    public void Load_CorruptKey_ThrowsNamingKeyFile(string content)
    {
        using var ca = CertificateAuthority.Create([], _time);
        ca.Save(_temp.Path);
        OverwriteKey(content);

        var e = Assert.Throws<CertificateAuthorityException>(() => CertificateAuthority.Load(_temp.Path));

        Assert.Contains(_temp.Combine("root.key"), e.Message, StringComparison.Ordinal);
        Assert.Contains("not a valid ECDSA private key", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_PublicKeyInsteadOfPrivate_Throws()
    {
        using var ca = CertificateAuthority.Create([], _time);
        ca.Save(_temp.Path);
        OverwriteKey(ca.PublicCertificate.GetECDsaPublicKey()!.ExportSubjectPublicKeyInfoPem());

        var e = Assert.Throws<CertificateAuthorityException>(() => CertificateAuthority.Load(_temp.Path));

        Assert.Contains("not a valid ECDSA private key", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_KeyFromAnotherCa_ThrowsMismatch()
    {
        using var ca = CertificateAuthority.Create([], _time);
        ca.Save(_temp.Path);
        using var other = CertificateAuthority.Create([], _time);
        OverwriteKey(other.Certificate.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());

        var e = Assert.Throws<CertificateAuthorityException>(() => CertificateAuthority.Load(_temp.Path));

        Assert.Contains("does not belong to the certificate", e.Message, StringComparison.Ordinal);
        Assert.Contains(_temp.Combine("root.key"), e.Message, StringComparison.Ordinal);
        Assert.Contains(_temp.Combine("root.crt"), e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadOrCreate_EmptyDirectory_CreatesThenLoadsSame()
    {
        var directory = _temp.Combine("ca");

        using var first = CertificateAuthority.LoadOrCreate(directory, _time, out var created1);
        using var second = CertificateAuthority.LoadOrCreate(directory, _time, out var created2);

        Assert.True(created1);
        Assert.False(created2);
        Assert.Equal(first.Sha256Fingerprint, second.Sha256Fingerprint);
    }

    [Fact]
    public void LoadOrCreate_OnlyKeyPresent_ThrowsInsteadOfReplacing()
    {
        using (var ca = CertificateAuthority.Create([], _time))
        {
            ca.Save(_temp.Path);
        }

        File.Delete(_temp.Combine("root.crt"));

        Assert.Throws<CertificateAuthorityException>(() => CertificateAuthority.LoadOrCreate(_temp.Path, _time, out _));
        Assert.False(File.Exists(_temp.Combine("root.crt")));
    }

    [Fact]
    public void LoadOrCreate_RootExpired_Throws()
    {
        using (CertificateAuthority.LoadOrCreate(_temp.Path, _time, out _))
        {
        }

        _time.Advance(TimeSpan.FromDays(3700));

        var e = Assert.Throws<CertificateAuthorityException>(() => CertificateAuthority.LoadOrCreate(_temp.Path, _time, out _));
        Assert.Contains("expired", e.Message, StringComparison.Ordinal);
    }

    private void OverwriteKey(string content)
    {
        // Keep 0600 so the mode check passes and the content check is what fails.
        var path = _temp.Combine("root.key");
        File.Delete(path);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using var writer = new StreamWriter(path, options);
        writer.Write(content);
    }
}
