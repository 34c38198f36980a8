// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ECDSA} from "./ECDSA.sol";
import {EIP712} from "./EIP712.sol";

/// @title JobRegistry
/// @notice The owners' consent to their jobs, on chain. A job's id is its owner's address and
///         a nonce the owner picks, `jobId = owner << 96 | nonce`, so ids are unique and nobody
///         but the owner can create one under the owner's name. What is stored is the hash of
///         the job's `JobTerms` (EIP-712): the target, the selector, the arguments (the hash of
///         the calldata for static arguments, of the script for dynamic ones), the gas limit,
///         the most one task may cost, and the trigger. A task may run only for a job whose
///         current terms hash is exactly the one its assignment names.
///
///         A job is registered by its owner's transaction, or by anyone holding the owner's
///         EIP-712 `JobConsent` signature (nonce, expiry, terms) until it expires: the keeper
///         of the first task does it in the same transaction. Only the owner updates or
///         cancels; a cancelled id is never usable again, and cancelling an id that was never
///         registered voids any consent signed for it.
abstract contract JobRegistry is EIP712 {
    /// @notice How a job's call arguments are fixed.
    uint8 public constant ARGS_STATIC = 0; // argsHash = keccak256(calldata): exactly this call
    uint8 public constant ARGS_DYNAMIC = 1; // argsHash = the script's content id digest

    struct JobTerms {
        address target;
        bytes4 selector;
        uint8 argsMode;
        bytes32 argsHash;
        uint64 gasLimit;
        uint256 maxFeePerTask;
        bytes32 trigger;
    }

    bytes32 public constant JOB_TERMS_TYPEHASH = keccak256(
        "JobTerms(address target,bytes4 selector,uint8 argsMode,bytes32 argsHash,uint64 gasLimit,"
        "uint256 maxFeePerTask,bytes32 trigger)"
    );
    bytes32 public constant JOB_CONSENT_TYPEHASH = keccak256(
        "JobConsent(uint96 nonce,uint64 expiry,JobTerms terms)JobTerms(address target,bytes4 selector,"
        "uint8 argsMode,bytes32 argsHash,uint64 gasLimit,uint256 maxFeePerTask,bytes32 trigger)"
    );
    bytes32 public constant CANCEL_JOB_TYPEHASH = keccak256("CancelJob(uint256 jobId)");

    /// @notice The stored value of a cancelled job.
    bytes32 public constant CANCELLED = bytes32(uint256(1));

    /// @dev jobId → current terms hash; zero: never registered; CANCELLED: cancelled.
    mapping(uint256 => bytes32) private _jobs;

    event JobRegistered(uint256 indexed jobId, address indexed owner, bytes32 termsHash);
    event JobUpdated(uint256 indexed jobId, bytes32 previousTermsHash, bytes32 termsHash);
    event JobCancelled(uint256 indexed jobId);

    error JobExists(uint256 jobId);
    error JobNotActive(uint256 jobId);
    error NotJobOwner(uint256 jobId, address caller);
    error ConsentExpired(uint64 expiry, uint256 timestamp);
    error BadOwnerSignature(address recovered, address owner);
    error UnknownArgsMode(uint8 argsMode);

    /// @notice The owner encoded in `jobId`.
    function ownerOf(uint256 jobId) public pure returns (address) {
        return address(uint160(jobId >> 96));
    }

    /// @notice The id of `owner`'s job number `nonce`.
    function jobIdOf(address owner, uint96 nonce) public pure returns (uint256) {
        return (uint256(uint160(owner)) << 96) | nonce;
    }

    /// @notice The terms hash of job `jobId`: zero if never registered, CANCELLED if cancelled.
    function jobTermsHash(uint256 jobId) public view returns (bytes32) {
        return _jobs[jobId];
    }

    /// @notice Register the sender's job number `nonce` with `terms`.
    function registerJob(uint96 nonce, JobTerms calldata terms) external returns (uint256 jobId) {
        jobId = jobIdOf(msg.sender, nonce);
        _register(jobId, hashTerms(terms));
    }

    /// @notice Register job `jobId` with its owner's consent signature (anyone may send it).
    function registerJobWithConsent(uint256 jobId, uint64 expiry, JobTerms calldata terms, bytes calldata signature)
        public
    {
        bytes32 termsHash = hashTerms(terms);
        if (block.timestamp > expiry) revert ConsentExpired(expiry, block.timestamp);
        address owner = ownerOf(jobId);
        address signer = ECDSA.recover(consentDigest(uint96(jobId), expiry, termsHash), signature);
        if (signer != owner || signer == address(0)) revert BadOwnerSignature(signer, owner);
        _register(jobId, termsHash);
    }

    /// @notice Replace the terms of the sender's active job `jobId`.
    function updateJob(uint256 jobId, JobTerms calldata terms) external {
        bytes32 previous = _activeJobOfSender(jobId);
        bytes32 termsHash = hashTerms(terms);
        _jobs[jobId] = termsHash;
        emit JobUpdated(jobId, previous, termsHash);
    }

    /// @notice Cancel the sender's job `jobId`, registered or not (voiding consent signed for it).
    function cancelJob(uint256 jobId) external {
        if (ownerOf(jobId) != msg.sender) revert NotJobOwner(jobId, msg.sender);
        _cancel(jobId);
    }

    /// @notice Cancel job `jobId` with its owner's EIP-712 `CancelJob` signature (anyone may send it).
    function cancelJobWithSignature(uint256 jobId, bytes calldata signature) external {
        bytes32 digest = _typedDigest(keccak256(abi.encode(CANCEL_JOB_TYPEHASH, jobId)));
        address signer = ECDSA.recover(digest, signature);
        if (signer != ownerOf(jobId) || signer == address(0)) revert BadOwnerSignature(signer, ownerOf(jobId));
        _cancel(jobId);
    }

    /// @notice The EIP-712 hash of `terms` (what is stored and what assignments name).
    function hashTerms(JobTerms calldata terms) public pure returns (bytes32) {
        if (terms.argsMode > ARGS_DYNAMIC) revert UnknownArgsMode(terms.argsMode);
        return keccak256(
            abi.encode(
                JOB_TERMS_TYPEHASH,
                terms.target,
                terms.selector,
                terms.argsMode,
                terms.argsHash,
                terms.gasLimit,
                terms.maxFeePerTask,
                terms.trigger
            )
        );
    }

    /// @notice The EIP-712 digest an owner signs to consent to job number `nonce` with these terms.
    function consentDigest(uint96 nonce, uint64 expiry, bytes32 termsHash) public view returns (bytes32) {
        return _typedDigest(keccak256(abi.encode(JOB_CONSENT_TYPEHASH, nonce, expiry, termsHash)));
    }

    function _register(uint256 jobId, bytes32 termsHash) private {
        if (_jobs[jobId] != bytes32(0)) revert JobExists(jobId);
        _jobs[jobId] = termsHash;
        emit JobRegistered(jobId, ownerOf(jobId), termsHash);
    }

    function _cancel(uint256 jobId) private {
        if (_jobs[jobId] == CANCELLED) revert JobNotActive(jobId);
        _jobs[jobId] = CANCELLED;
        emit JobCancelled(jobId);
    }

    function _activeJobOfSender(uint256 jobId) private view returns (bytes32 termsHash) {
        if (ownerOf(jobId) != msg.sender) revert NotJobOwner(jobId, msg.sender);
        termsHash = _jobs[jobId];
        if (termsHash == bytes32(0) || termsHash == CANCELLED) revert JobNotActive(jobId);
    }
}
