using System.IO.Pipelines;
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
        await AppendFollowedAsync(output, 7_777, 0, _data.Length);
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

        // The file is read in chunks of far more than a byte, so a reader that sent the last byte could
        // not have stopped on the one before it.
        Assert.Equal(_data.Length - 1, output.Count);
        Assert.False(copy.IsCompleted);

        _fill.Complete(FillOutcome.Committed);
        var (outcome, bytes) = await copy.WaitAsync(s_timeout);

        Assert.Equal(ReadOutcome.Completed, outcome);
        Assert.Equal(_data.Length, bytes);
        Assert.Equal(_data, output.ToArray());
    }

    [Theory]
    [InlineData(null)] // the commit still runs
    [InlineData(nameof(FillOutcome.StorageError))] // the disk refused the commit: the bytes were still the blob
    public async Task CopyAsync_FillVerified_SendsTheLastByteWhateverTheCommitDoes(string? commit)
    {
        var output = new RecordingStream();
        Append(_data.Length);

        var copy = BlobReader.CopyAsync(_read, 0, _data.Length, output, _fill, CancellationToken.None);
        await output.WaitForCountAsync(_data.Length - 1);
        _fill.Verify();
        if (commit is not null)
        {
            _fill.Complete(Enum.Parse<FillOutcome>(commit));
        }

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
        await AppendFollowedAsync(output, 10_000, start, length);
        Assert.Equal(length - 1, output.Count); // the range's last byte waits for the digest check too
        Assert.False(copy.IsCompleted);

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
        await AppendFollowedAsync(output, 65_536, 0, long.MaxValue);
        _fill.Complete(FillOutcome.Committed);
        var (outcome, bytes) = await copy.WaitAsync(s_timeout);

        Assert.Equal(ReadOutcome.Completed, outcome);
        Assert.Equal(_data.Length, bytes);
        Assert.Equal(_data, output.ToArray());
    }

    [Fact]
    public async Task CopyAsync_CanceledWhileWaitingForBytes_ReturnsClientGone()
    {
        // A pipe, read here: its reader sees bytes only once the flush that carried them has passed its
        // cancellation check, so the cancel below lands on the reader's wait for more bytes, never on the flush.
        var output = new Pipe();
        Append(1_000);
        using var cancellation = new CancellationTokenSource();

        var copy = BlobReader.CopyAsync(_read, 0, _data.Length, output.Writer, _fill, cancellation.Token);
        var received = await output.Reader.ReadAtLeastAsync(1_000).AsTask().WaitAsync(s_timeout);
        Assert.Equal(1_000, received.Buffer.Length);
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

    /// <summary>
    /// Appends the whole blob in chunks, and after each waits until the reader has sent all it may of it
    /// (the bytes of its range so far, but the last of a known length): the reader follows the fill chunk by chunk, each read
    /// after the first waiting for bytes that were not there yet.
    /// </summary>
    private async Task AppendFollowedAsync(RecordingStream output, int chunk, long start, long length)
    {
        while (_appended < _data.Length)
        {
            Append((int)Math.Min(chunk, _data.Length - _appended));
            await output.WaitForCountAsync(Math.Max(0, Math.Min(_appended - start, length - 1)));
        }
    }

    private static byte[] RandomBytes(int length)
    {
        var bytes = new byte[length];
        new Random(length).NextBytes(bytes);
        return bytes;
    }
}
