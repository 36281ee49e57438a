using Microsoft.Win32.SafeHandles;
using MitmCache.Caching;
using MitmCache.Core.Tests.Certificates;
using MitmCache.Registry;

namespace MitmCache.Core.Tests.Caching;

/// <summary>
/// Reads from a real temp file while a simulated fill appends to it, as a joiner of an in-flight
/// upstream fetch does.
/// </summary>
public sealed class BlobReaderTests : IDisposable
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(10);

    private readonly TempDirectory _directory = new();
    private readonly byte[] _data = RandomBytes(300_000);
    private readonly SafeFileHandle _write;
    private readonly SafeFileHandle _read;
    private readonly BlobFill _fill;
    private long _appended;

    public BlobReaderTests()
    {
        var path = _directory.Combine("fill.part");
        _write = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
        _read = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        _fill = new BlobFill(Digest.Compute(_data), path, _directory.Combine("final"));
    }

    public void Dispose()
    {
        _write.Dispose();
        _read.Dispose();
        _directory.Dispose();
    }

    [Fact]
    public async Task CopyAsync_ReaderStartsBeforeAnyByte_ReceivesExactlyTheBytes()
    {
        var output = new RecordingStream();

        var copy = BlobReader.CopyAsync(_read, 0, _data.Length, output, _fill, CancellationToken.None);
        await AppendInChunksAsync(_data.Length, 7_777);
        _fill.Complete(FillOutcome.Committed);
        var (outcome, bytes) = await copy.WaitAsync(s_timeout);

        Assert.Equal(ReadOutcome.Completed, outcome);
        Assert.Equal(_data.Length, bytes);
        Assert.Equal(_data, output.ToArray());
    }

    [Fact]
    public async Task CopyAsync_AllBytesWrittenButNotCommitted_HoldsBackTheLastByte()
    {
        var output = new RecordingStream();
        Append(_data.Length);

        var copy = BlobReader.CopyAsync(_read, 0, _data.Length, output, _fill, CancellationToken.None);
        await output.WaitForCountAsync(_data.Length - 1);
        await Task.Delay(100);

        Assert.Equal(_data.Length - 1, output.Count);
        Assert.False(copy.IsCompleted);

        _fill.Complete(FillOutcome.Committed);
        var (outcome, bytes) = await copy.WaitAsync(s_timeout);

        Assert.Equal(ReadOutcome.Completed, outcome);
        Assert.Equal(_data.Length, bytes);
        Assert.Equal(_data, output.ToArray());
    }

    [Theory]
    [InlineData(nameof(FillOutcome.DigestMismatch))]
    [InlineData(nameof(FillOutcome.Truncated))]
    [InlineData(nameof(FillOutcome.UpstreamError))]
    [InlineData(nameof(FillOutcome.StorageError))]
    [InlineData(nameof(FillOutcome.Abandoned))]
    public async Task CopyAsync_FillFailsWhileReaderWaits_ReturnsSourceFailed(string failure)
    {
        var output = new RecordingStream();
        Append(100_000);

        var copy = BlobReader.CopyAsync(_read, 0, _data.Length, output, _fill, CancellationToken.None);
        await output.WaitForCountAsync(100_000);
        _fill.Complete(Enum.Parse<FillOutcome>(failure));
        var (outcome, bytes) = await copy.WaitAsync(s_timeout);

        Assert.Equal(ReadOutcome.SourceFailed, outcome);
        Assert.Equal(100_000, bytes);
    }

    [Fact]
    public async Task CopyAsync_AllBytesWrittenThenDigestMismatch_NeverSendsTheLastByte()
    {
        var output = new RecordingStream();
        Append(_data.Length);

        var copy = BlobReader.CopyAsync(_read, 0, _data.Length, output, _fill, CancellationToken.None);
        await output.WaitForCountAsync(_data.Length - 1);
        _fill.Complete(FillOutcome.DigestMismatch);
        var (outcome, bytes) = await copy.WaitAsync(s_timeout);

        Assert.Equal(ReadOutcome.SourceFailed, outcome);
        Assert.Equal(_data.Length - 1, bytes);
        Assert.Equal(_data.Length - 1, output.Count);
    }

    [Fact]
    public async Task CopyAsync_FillFailedBeforeReadStarts_ReturnsSourceFailedWithoutBytes()
    {
        var output = new RecordingStream();
        Append(_data.Length);
        _fill.Complete(FillOutcome.DigestMismatch);

        var (outcome, bytes) = await BlobReader.CopyAsync(_read, 0, _data.Length, output, _fill, CancellationToken.None);

        Assert.Equal(ReadOutcome.SourceFailed, outcome);
        Assert.Equal(0, bytes);
        Assert.Equal(0, output.Count);
    }

    [Fact]
    public async Task CopyAsync_RangeFromMiddleOfGrowingFile_ReceivesThatSliceAfterCommit()
    {
        const int start = 50_000;
        const int length = 100_000;
        var output = new RecordingStream();

        var copy = BlobReader.CopyAsync(_read, start, length, output, _fill, CancellationToken.None);
        await AppendInChunksAsync(_data.Length, 10_000);
        await output.WaitForCountAsync(length - 1);
        await Task.Delay(50);
        Assert.False(copy.IsCompleted); // the range's last byte waits for the digest check too

        _fill.Complete(FillOutcome.Committed);
        var (outcome, bytes) = await copy.WaitAsync(s_timeout);

        Assert.Equal(ReadOutcome.Completed, outcome);
        Assert.Equal(length, bytes);
        Assert.Equal(_data.AsSpan(start, length).ToArray(), output.ToArray());
    }

    [Fact]
    public async Task CopyAsync_UnknownLength_ReadsToEndOnceCommitted()
    {
        var output = new RecordingStream();

        var copy = BlobReader.CopyAsync(_read, 0, long.MaxValue, output, _fill, CancellationToken.None);
        await AppendInChunksAsync(_data.Length, 65_536);
        _fill.Complete(FillOutcome.Committed);
        var (outcome, bytes) = await copy.WaitAsync(s_timeout);

        Assert.Equal(ReadOutcome.Completed, outcome);
        Assert.Equal(_data.Length, bytes);
        Assert.Equal(_data, output.ToArray());
    }

    [Fact]
    public async Task CopyAsync_CanceledWhileWaitingForBytes_ReturnsClientGone()
    {
        var output = new RecordingStream();
        Append(1_000);
        using var cancellation = new CancellationTokenSource();

        var copy = BlobReader.CopyAsync(_read, 0, _data.Length, output, _fill, cancellation.Token);
        await output.WaitForCountAsync(1_000);
        await Task.Delay(200); // let the flush of those bytes return, so the reader is waiting for more
        cancellation.Cancel();
        var (outcome, bytes) = await copy.WaitAsync(s_timeout);

        Assert.Equal(ReadOutcome.ClientGone, outcome);
        Assert.Equal(1_000, bytes);
        Assert.False(_fill.Completion.IsCompleted); // the fill itself is not the client's to stop
    }

    [Fact]
    public async Task CopyAsync_CanceledWhileWaitingForCommit_ReturnsClientGone()
    {
        var output = new RecordingStream();
        Append(_data.Length);
        using var cancellation = new CancellationTokenSource();

        var copy = BlobReader.CopyAsync(_read, 0, _data.Length, output, _fill, cancellation.Token);
        await output.WaitForCountAsync(_data.Length - 1);
        cancellation.Cancel();
        var (outcome, bytes) = await copy.WaitAsync(s_timeout);

        Assert.Equal(ReadOutcome.ClientGone, outcome);
        Assert.Equal(_data.Length - 1, bytes);
    }

    [Fact]
    public async Task CopyAsync_AlreadyCanceled_ReturnsClientGone()
    {
        Append(_data.Length);

        var (outcome, bytes) = await BlobReader.CopyAsync(_read, 0, _data.Length, new RecordingStream(), null, new CancellationToken(canceled: true));

        Assert.Equal(ReadOutcome.ClientGone, outcome);
        Assert.Equal(0, bytes);
    }

    [Fact]
    public async Task CopyAsync_CommittedFileWithoutFill_CopiesTheRange()
    {
        Append(_data.Length);
        var output = new RecordingStream();

        var (outcome, bytes) = await BlobReader.CopyAsync(_read, 70_000, 150_000, output, null, CancellationToken.None);

        Assert.Equal(ReadOutcome.Completed, outcome);
        Assert.Equal(150_000, bytes);
        Assert.Equal(_data.AsSpan(70_000, 150_000).ToArray(), output.ToArray());
    }

    [Fact]
    public async Task CopyAsync_FileShorterThanLength_ReturnsSourceFailed()
    {
        Append(1_000);
        var output = new RecordingStream();

        var (outcome, bytes) = await BlobReader.CopyAsync(_read, 0, 2_000, output, null, CancellationToken.None);

        Assert.Equal(ReadOutcome.SourceFailed, outcome);
        Assert.Equal(1_000, bytes);
    }

    [Fact]
    public async Task CopyAsync_ClientWriteFails_ReturnsClientGone()
    {
        Append(_data.Length);
        var output = new RecordingStream { FailWrites = true };

        var (outcome, bytes) = await BlobReader.CopyAsync(_read, 0, _data.Length, output, null, CancellationToken.None);

        Assert.Equal(ReadOutcome.ClientGone, outcome);
        Assert.Equal(0, bytes);
    }

    [Fact]
    public async Task CopyAsync_ZeroLength_CompletesWithoutReading()
    {
        var (outcome, bytes) = await BlobReader.CopyAsync(_read, 0, 0, new RecordingStream(), _fill, CancellationToken.None);

        Assert.Equal(ReadOutcome.Completed, outcome);
        Assert.Equal(0, bytes);
    }

    private void Append(int count)
    {
        RandomAccess.Write(_write, _data.AsSpan((int)_appended, count), _appended);
        _appended += count;
        _fill.Advance(count);
    }

    private async Task AppendInChunksAsync(int total, int chunk)
    {
        while (_appended < total)
        {
            Append((int)Math.Min(chunk, total - _appended));
            await Task.Delay(1);
        }
    }

    private static byte[] RandomBytes(int length)
    {
        var bytes = new byte[length];
        new Random(length).NextBytes(bytes);
        return bytes;
    }
}
